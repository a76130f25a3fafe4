"""The Python `pusher` SDK (pusher-http-python, pinned in requirements.txt) against Herald.

Run by ../16-python-sdk.test.mjs, which starts herald (one node or a cluster), a loopback fixture
that drives real pusher-js clients and receives Herald's webhooks, and passes everything through
the environment:

  HERALD_HOST, HERALD_PORTS (comma separated, one per node), HERALD_APP_ID / _KEY / _SECRET,
  HERALD_FIXTURE_URL, HERALD_HOOK_PREFIX (channels whose occupied/vacated webhooks the fixture
  receives), HERALD_WAIT_MS (deadline of every wait), HERALD_CLUSTER (node count, 0 = single).

Every wait is a fixture call with a deadline, or polling of the HTTP API with a deadline. "Not
delivered" checks end with a marker event published through the same SDK instance (same node).
"""

import json
import os
import time
import unittest
import urllib.error
import urllib.request
import uuid

import pusher
import pusher.errors
from pusher.http import POST, Request

HOST = os.environ['HERALD_HOST']
PORTS = [int(p) for p in os.environ['HERALD_PORTS'].split(',')]
APP_ID = os.environ['HERALD_APP_ID']
KEY = os.environ['HERALD_APP_KEY']
SECRET = os.environ['HERALD_APP_SECRET']
FIXTURE = os.environ['HERALD_FIXTURE_URL']
HOOK_PREFIX = os.environ['HERALD_HOOK_PREFIX']
WAIT_S = int(os.environ.get('HERALD_WAIT_MS', '5000')) / 1000.0


def sdk(node=len(PORTS) - 1):
    """A Pusher client for one node (in cluster mode the last node; fixture clients rotate)."""
    return pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, ssl=False, host=HOST,
                         port=PORTS[node % len(PORTS)], timeout=10)


def fx(endpoint, **body):
    """Calls the node fixture; raises with its error text on failure."""
    req = urllib.request.Request(FIXTURE + '/' + endpoint, data=json.dumps(body).encode(),
                                 headers={'content-type': 'application/json'}, method='POST')
    try:
        with urllib.request.urlopen(req, timeout=WAIT_S + 10) as res:
            return json.loads(res.read())
    except urllib.error.HTTPError as e:
        raise AssertionError('fixture /%s failed: %s' % (endpoint, e.read().decode()))


def eventually(fn, label):
    """Polls fn() until it returns a truthy value; fails after the deadline with the last value."""
    deadline = time.time() + WAIT_S
    last = None
    while True:
        last = fn()
        if last[0]:
            return last[1]
        if time.time() > deadline:
            raise AssertionError('timed out waiting for %s; last: %r' % (label, last[1]))
        time.sleep(0.05)


def uniq(prefix):
    return '%s%s' % (prefix, uuid.uuid4().hex[:8])


class Client(object):
    """A pusher-js client living in the node fixture."""

    def __init__(self):
        r = fx('connect')
        self.id = r['id']
        self.socket_id = r['socket_id']

    def subscribe(self, channel, auth=None, expect_ok=True):
        r = fx('subscribe', id=self.id, channel=channel, auth=auth)
        if expect_ok and not r['ok']:
            raise AssertionError('subscription to %s failed: %r' % (channel, r['data']))
        return r

    def wait_event(self, channel, event):
        return fx('wait_event', id=self.id, channel=channel, event=event)

    def events(self, channel):
        return fx('events', id=self.id, channel=channel)


class TriggerTest(unittest.TestCase):
    def test_trigger_single_channel_and_list(self):
        c = Client()
        c.subscribe('py-one')
        c.subscribe('py-two')
        p = sdk()
        self.assertEqual(p.trigger('py-one', 'py-event', {'hello': 'world'}), {})
        f = c.wait_event('py-one', 'py-event')
        self.assertEqual(f['data'], {'hello': 'world'})
        # a list of channels: one request, both deliveries; a str payload is forwarded verbatim
        p.trigger(['py-one', 'py-two'], 'py-multi', 'plain text')
        self.assertEqual(c.wait_event('py-one', 'py-multi')['data'], 'plain text')
        self.assertEqual(c.wait_event('py-two', 'py-multi')['data'], 'plain text')

    def test_trigger_socket_id_excludes_that_connection(self):
        a, b = Client(), Client()
        a.subscribe('py-excl')
        b.subscribe('py-excl')
        p = sdk()
        p.trigger('py-excl', 'news', {'to_others': True}, socket_id=a.socket_id)
        p.trigger('py-excl', 'news-marker', {'marker': True})
        b.wait_event('py-excl', 'news')
        b.wait_event('py-excl', 'news-marker')
        a.wait_event('py-excl', 'news-marker')
        self.assertEqual([f['event'] for f in a.events('py-excl')], ['news-marker'])
        self.assertEqual([f['event'] for f in b.events('py-excl')], ['news', 'news-marker'])

    def test_trigger_batch(self):
        a, b = Client(), Client()
        a.subscribe('py-batch-1')
        b.subscribe('py-batch-2')
        p = sdk()
        res = p.trigger_batch([
            {'channel': 'py-batch-1', 'name': 'b1', 'data': {'n': 1}},
            {'channel': 'py-batch-2', 'name': 'b2', 'data': {'n': 2}},
            {'channel': 'py-batch-1', 'name': 'b3', 'data': {'n': 3}, 'socket_id': a.socket_id},
            {'channel': 'py-batch-1', 'name': 'b-marker', 'data': {}},
        ])
        self.assertIsInstance(res, dict)
        self.assertEqual(a.wait_event('py-batch-1', 'b1')['data'], {'n': 1})
        self.assertEqual(b.wait_event('py-batch-2', 'b2')['data'], {'n': 2})
        a.wait_event('py-batch-1', 'b-marker')
        self.assertEqual([f['event'] for f in a.events('py-batch-1')], ['b1', 'b-marker'])


class AuthAndQueriesTest(unittest.TestCase):
    def test_authenticate_private_channel_accepted_and_forged_rejected(self):
        p = sdk()
        a = Client()
        auth = p.authenticate(channel='private-py-secret', socket_id=a.socket_id)
        self.assertEqual(sorted(auth), ['auth'])
        self.assertTrue(auth['auth'].startswith(KEY + ':'))
        a.subscribe('private-py-secret', auth)
        p.trigger('private-py-secret', 'secret', {'s': 1})
        self.assertEqual(a.wait_event('private-py-secret', 'secret')['data'], {'s': 1})
        # a signature made for another socket id is refused
        b = Client()
        forged = p.authenticate(channel='private-py-secret', socket_id=a.socket_id)
        r = b.subscribe('private-py-secret', forged, expect_ok=False)
        self.assertFalse(r['ok'], r)

    def test_presence_auth_channels_info_channel_info_users_info(self):
        p = sdk()
        room = 'presence-py-room'
        a, b, c = Client(), Client(), Client()
        for client, uid in ((a, 'py-u1'), (b, 'py-u2'), (c, 'py-u1')):
            auth = p.authenticate(channel=room, socket_id=client.socket_id,
                                  custom_data={'user_id': uid, 'user_info': {'name': uid.upper()}})
            self.assertEqual(json.loads(auth['channel_data'])['user_id'], uid)
            r = client.subscribe(room, auth)
            self.assertEqual(r['data']['myID'], uid)  # pusher-js' Members object
        a.subscribe('py-info-public')

        users = eventually(lambda: (lambda u: (len(u['users']) == 2, u))(p.users_info(room)),
                           'two distinct users in %s' % room)
        self.assertEqual(sorted(u['id'] for u in users['users']), ['py-u1', 'py-u2'])

        info = eventually(
            lambda: (lambda r: (r.get('user_count') == 2 and r.get('subscription_count') == 3, r))(
                p.channel_info(room, ['user_count', 'subscription_count'])),
            'channel_info of %s' % room)
        self.assertTrue(info['occupied'])

        listing = eventually(
            lambda: (lambda r: (r['channels'].get(room) == {'user_count': 2}, r))(
                p.channels_info(prefix_filter='presence-py-', attributes=['user_count'])),
            'channels_info presence-py-')
        self.assertEqual(listing, {'channels': {room: {'user_count': 2}}})

        everything = p.channels_info(prefix_filter='py-info-')
        self.assertEqual(everything, {'channels': {'py-info-public': {}}})
        self.assertEqual(p.channel_info('py-nobody-here'), {'occupied': False})
        self.assertTrue(p.channel_info('py-info-public')['occupied'])


class UserTest(unittest.TestCase):
    def _signed_in(self, p, user_id):
        c = Client()
        auth = p.authenticate_user(c.socket_id, {'id': user_id, 'user_info': {'n': user_id}})
        self.assertEqual(json.loads(auth['user_data'])['id'], user_id)
        r = fx('signin', id=c.id, auth=auth)
        self.assertTrue(r['ok'], r)
        return c

    def test_terminate_connections_via_spec_path(self):
        """POST /apps/{id}/users/{user}/terminate_connections, signed by the SDK's Request."""
        p = sdk()
        victim = self._signed_in(p, 'py-term')
        other = self._signed_in(p, 'py-keep')
        other.subscribe('py-term-public')
        pc = p._pusher_client
        res = pc.http.send_request(
            Request(pc, POST, '/apps/%s/users/%s/terminate_connections' % (APP_ID, 'py-term'), {}))
        self.assertEqual(res, {})
        st = fx('wait_state', id=victim.id, state='disconnected')
        self.assertEqual(st['close_codes'], [4009])
        p.trigger('py-term-public', 'still-here', {})
        other.wait_event('py-term-public', 'still-here')

    def test_sdk_terminate_user_connections_unchanged(self):
        """The SDK method itself. pusher 3.3.4 signs and POSTs /users/{id}/terminate_connections,
        without the /apps/{app_id} prefix of PROTOCOL.md section 6.8 (which pusher-http-node and
        -php use). Herald accepts that path too, finding the app by auth_key, so the unchanged
        SDK call works."""
        p = sdk()
        victim = self._signed_in(p, 'py-term-sdk')
        other = self._signed_in(p, 'py-keep-sdk')
        other.subscribe('py-term-sdk-public')
        self.assertEqual(p.terminate_user_connections('py-term-sdk'), {})
        st = fx('wait_state', id=victim.id, state='disconnected')
        self.assertEqual(st['close_codes'], [4009])
        p.trigger('py-term-sdk-public', 'still-here', {})
        other.wait_event('py-term-sdk-public', 'still-here')


class WebhookTest(unittest.TestCase):
    def test_validate_webhook_accepts_herald_webhook(self):
        channel = uniq(HOOK_PREFIX)
        c = Client()
        c.subscribe(channel)
        hook = fx('wait_webhook', channel=channel, name='channel_occupied')
        headers, body = hook['headers'], hook['body']
        self.assertEqual(headers['content-type'], 'application/json')
        p = sdk()
        data = p.validate_webhook(key=headers['x-pusher-key'], signature=headers['x-pusher-signature'],
                                  body=body)
        self.assertIsNotNone(data, 'validate_webhook rejected %r %r' % (headers, body))
        self.assertIn({'name': 'channel_occupied', 'channel': channel},
                      [{k: e[k] for k in ('name', 'channel')} for e in data['events']])
        self.assertLess(abs(time.time() * 1000 - data['time_ms']), 60000)
        # and it is a real check: a changed body, a wrong signature or another key fail
        self.assertIsNone(p.validate_webhook(key=headers['x-pusher-key'],
                                             signature=headers['x-pusher-signature'],
                                             body=body.replace(channel, channel + 'x')))
        self.assertIsNone(p.validate_webhook(key=headers['x-pusher-key'], signature='0' * 64, body=body))
        self.assertIsNone(p.validate_webhook(key='other-key', signature=headers['x-pusher-signature'],
                                             body=body))


if __name__ == '__main__':
    unittest.main()
