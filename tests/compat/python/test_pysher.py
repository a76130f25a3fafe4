"""pysher (PyPI, a Python WebSocket client nobody here wrote, pinned in requirements.txt) against
Herald, with the Python `pusher` SDK publishing.

Run by ../17-pysher.test.mjs, which starts herald (one node or a cluster) and passes
HERALD_HOST, HERALD_PORTS (one per node), HERALD_APP_ID / _KEY / _SECRET (an app with client
events on) and HERALD_WAIT_MS. In cluster mode the clients connect to the first node and the SDK
publishes through the last, so every delivery crosses nodes.

pysher runs its WebSocket in a thread and calls back there; each test waits on queues with a
deadline. pysher signs private and presence subscriptions itself from the app secret (its
`secret=` option), as an app server would.
"""

import json
import os
import queue
import unittest
import uuid

import pusher
import pysher

HOST = os.environ['HERALD_HOST']
PORTS = [int(p) for p in os.environ['HERALD_PORTS'].split(',')]
APP_ID = os.environ['HERALD_APP_ID']
KEY = os.environ['HERALD_APP_KEY']
SECRET = os.environ['HERALD_APP_SECRET']
WAIT_S = int(os.environ.get('HERALD_WAIT_MS', '5000')) / 1000.0


def sdk():
    return pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, ssl=False, host=HOST,
                         port=PORTS[-1], timeout=10)


class Client:
    """A connected pysher client; every event of every channel lands in `events`."""

    def __init__(self, user_data=None, secret=SECRET):
        self.events = queue.Queue()
        self.connected = queue.Queue()
        self.pysher = pysher.Pusher(KEY, custom_host=HOST, port=PORTS[0], secure=False,
                                    secret=secret, user_data=user_data or {},
                                    reconnect_interval=1)
        self.pysher.connection.bind('pusher:connection_established', self.connected.put)
        # pysher registers a channel only after sending its subscribe, so a reply that arrives
        # first is dropped by pysher (its race, not the server's): events are recorded where
        # the connection hands them to pysher's channels, before that lookup.
        dispatch = self.pysher.connection.event_handler

        def record(event_name, data, channel_name):
            self.events.put((channel_name, event_name, data))
            dispatch(event_name, data, channel_name)

        self.pysher.connection.event_handler = record
        self.pysher.connect()
        established = json.loads(self.connected.get(timeout=WAIT_S))
        self.socket_id = established['socket_id']

    def subscribe(self, channel):
        return self.pysher.subscribe(channel)

    def next(self, channel, name):
        """The next event `name` on `channel` (others of the same channel are skipped)."""
        while True:
            got_channel, got_name, data = self.events.get(timeout=WAIT_S)
            if (got_channel, got_name) == (channel, name):
                return data

    def nothing(self, channel, name, marker_channel, marker):
        """No `name` on `channel` before `marker` arrives on `marker_channel`."""
        while True:
            got_channel, got_name, data = self.events.get(timeout=WAIT_S)
            if (got_channel, got_name) == (channel, name):
                raise AssertionError('unexpected %s on %s: %s' % (name, channel, data))
            if (got_channel, got_name) == (marker_channel, marker):
                return

    def close(self):
        # websocket-client 1.x does not always wake its dispatcher on close: do not wait long
        # for the thread (a daemon); the close frame has been sent.
        self.pysher.disconnect(timeout=1)


def subscribed(client, channel):
    """Waits for the subscription's confirmation, whichever name pysher reports it under."""
    while True:
        got_channel, name, data = client.events.get(timeout=WAIT_S)
        if got_channel != channel:
            continue
        if name == 'pusher:subscription_error':
            raise AssertionError('subscription to %s refused: %s' % (channel, data))
        if name in ('pusher_internal:subscription_succeeded', 'pusher:subscription_succeeded'):
            return json.loads(data) if isinstance(data, str) and data else data


class PysherTest(unittest.TestCase):
    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, **kw):
        c = Client(**kw)
        self.clients.append(c)
        return c

    def test_public_channel_gets_server_events(self):
        c = self.client()
        channel = 'py-public-' + uuid.uuid4().hex[:8]
        c.subscribe(channel)
        subscribed(c, channel)
        sdk().trigger(channel, 'greet', {'hello': 'pysher'})
        self.assertEqual(json.loads(c.next(channel, 'greet')), {'hello': 'pysher'})

    def test_private_channel_signed_by_the_secret(self):
        c = self.client()
        channel = 'private-py-' + uuid.uuid4().hex[:8]
        c.subscribe(channel)
        subscribed(c, channel)
        sdk().trigger(channel, 'news', 'private text')
        self.assertEqual(c.next(channel, 'news'), 'private text')

    def test_a_wrong_secret_is_refused(self):
        c = self.client(secret='not-the-secret')
        channel = 'private-py-' + uuid.uuid4().hex[:8]
        c.subscribe(channel)
        data = c.next(channel, 'pusher:subscription_error')
        self.assertIn('401', json.dumps(data) if not isinstance(data, str) else data)

    def test_presence_members_and_client_events(self):
        channel = 'presence-py-' + uuid.uuid4().hex[:8]
        ann = self.client(user_data={'user_id': 'ann', 'user_info': {'name': 'Ann'}})
        ann.subscribe(channel)
        first = subscribed(ann, channel)
        self.assertEqual(first['presence']['ids'], ['ann'])
        bob = self.client(user_data={'user_id': 'bob', 'user_info': {'name': 'Bob'}})
        bob_ch = bob.subscribe(channel)
        second = subscribed(bob, channel)
        self.assertEqual(sorted(second['presence']['ids']), ['ann', 'bob'])
        self.assertEqual(second['presence']['hash']['ann'], {'name': 'Ann'})
        added = json.loads(ann.next(channel, 'pusher_internal:member_added'))
        self.assertEqual(added, {'user_id': 'bob', 'user_info': {'name': 'Bob'}})
        # The server agrees with both clients.
        users = sdk().users_info(channel)
        self.assertEqual(sorted(u['id'] for u in users['users']), ['ann', 'bob'])
        # A client event reaches the other member, not its sender.
        bob_ch.trigger('client-wave', {'from': 'bob'})
        # A client event's data arrives as the JSON value the sender sent.
        self.assertEqual(ann.next(channel, 'client-wave'), {'from': 'bob'})
        marker = 'py-marker-' + uuid.uuid4().hex[:8]
        bob.subscribe(marker)
        subscribed(bob, marker)
        sdk().trigger(marker, 'done', {})
        bob.nothing(channel, 'client-wave', marker, 'done')
        # Bob leaves: Ann is told.
        bob.close()
        self.clients.remove(bob)
        removed = json.loads(ann.next(channel, 'pusher_internal:member_removed'))
        self.assertEqual(removed, {'user_id': 'bob'})


if __name__ == '__main__':
    unittest.main()
