// PROTOCOL.md §2.3, §2.4, §2.7: presence channels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { APPS, TEST_TIMEOUT, pollUntil, useHerald } from './harness.mjs';

const ctx = useHerald();

const ANN = { user_id: 'u1', user_info: { name: 'Ann' } };
const BOB = { user_id: 'u2', user_info: { name: 'Bob' } };

function memberList(members) {
  const out = [];
  members.each((m) => out.push(m));
  return out.sort((x, y) => (x.id < y.id ? -1 : 1));
}

/** Waits until the server reports `n` subscriptions on `channel` (server state with no client event). */
function subscriptionCount(channel, n) {
  const sdk = ctx.sdk();
  return pollUntil(async () => {
    const res = await sdk.get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } });
    const body = await res.json();
    return { ok: (body.subscription_count ?? 0) === n, value: body };
  }, `${channel} subscription_count == ${n}`);
}

test('two users: members, me, member_added, member_removed', { timeout: TEST_TIMEOUT }, async () => {
  const a = await ctx.connectedClient({ presence: ANN });
  const { channel: chA, data: membersA } = await a.subscribe('presence-room');
  assert.equal(membersA.count, 1);
  assert.deepEqual(membersA.me, { id: 'u1', info: { name: 'Ann' } });
  assert.deepEqual(memberList(membersA), [{ id: 'u1', info: { name: 'Ann' } }]);

  // wire shape of subscription_succeeded (§2.4)
  const okFrame = a.frames.items.find((f) => f.event === 'pusher_internal:subscription_succeeded');
  assert.deepEqual(okFrame.data, { presence: { ids: ['u1'], hash: { u1: { name: 'Ann' } }, count: 1 } });

  const added = a.on(chA, 'pusher:member_added');
  const removed = a.on(chA, 'pusher:member_removed');

  const b = await ctx.connectedClient({ presence: BOB });
  const { channel: chB, data: membersB } = await b.subscribe('presence-room');
  assert.equal(membersB.count, 2);
  assert.deepEqual(membersB.me, { id: 'u2', info: { name: 'Bob' } });
  assert.deepEqual(memberList(membersB), [
    { id: 'u1', info: { name: 'Ann' } },
    { id: 'u2', info: { name: 'Bob' } },
  ]);
  const bOk = b.frames.items.find((f) => f.event === 'pusher_internal:subscription_succeeded');
  assert.deepEqual([...bOk.data.presence.ids].sort(), ['u1', 'u2']);
  assert.deepEqual(bOk.data.presence.hash, { u1: { name: 'Ann' }, u2: { name: 'Bob' } });
  assert.equal(bOk.data.presence.count, 2);

  const addedEv = await added.nth(1, 'member_added');
  assert.deepEqual(addedEv.data, { id: 'u2', info: { name: 'Bob' } });
  assert.equal(chA.members.count, 2);
  // the joiner itself does not get member_added for itself
  assert.equal(b.frames.items.filter((f) => f.event === 'pusher_internal:member_added').length, 0);

  b.disconnect();
  const removedEv = await removed.nth(1, 'member_removed');
  assert.deepEqual(removedEv.data, { id: 'u2', info: { name: 'Bob' } });
  assert.equal(chA.members.count, 1);
  assert.deepEqual(memberList(chA.members), [{ id: 'u1', info: { name: 'Ann' } }]);
  assert.equal(added.length, 1);
  assert.equal(removed.length, 1);
  void chB;
});

test('same user in two tabs: member_added once, member_removed after the last tab leaves', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-tabs';
  const sdk = ctx.sdk();
  const a = await ctx.connectedClient({ presence: ANN });
  const { channel: chA } = await a.subscribe(CH);
  const added = a.on(chA, 'pusher:member_added');
  const removed = a.on(chA, 'pusher:member_removed');

  const tab1 = await ctx.connectedClient({ presence: BOB });
  await tab1.subscribe(CH);
  await added.nth(1, 'member_added for the first tab');

  const tab2 = await ctx.connectedClient({ presence: BOB });
  const { data: members2 } = await tab2.subscribe(CH);
  assert.equal(members2.count, 2, 'distinct users, not sockets');

  // sentinel after the second tab joined: a duplicate member_added would have arrived before it
  await sdk.trigger(CH, 'sentinel-1', {});
  await a.waitEvent(CH, 'sentinel-1');
  assert.equal(added.length, 1);
  assert.equal(a.frames.items.filter((f) => f.event === 'pusher_internal:member_added').length, 1);
  assert.equal(chA.members.count, 2);

  tab1.disconnect();
  await subscriptionCount(CH, 2);
  // marker through the node that handled tab1's leave (in cluster mode a member_removed would
  // be published from there)
  await ctx.sdkOn(tab1).trigger(CH, 'sentinel-2', {});
  await a.waitEvent(CH, 'sentinel-2');
  assert.equal(removed.length, 0, 'u2 still has a tab open');
  assert.equal(chA.members.count, 2);

  tab2.disconnect();
  const ev = await removed.nth(1, 'member_removed after the last tab');
  assert.deepEqual(ev.data, { id: 'u2', info: { name: 'Bob' } });
  assert.equal(chA.members.count, 1);
  // exactly one member_removed in total: a late one for tab1 would show up as a second one
  await sdk.trigger(CH, 'sentinel-3', {});
  await a.waitEvent(CH, 'sentinel-3');
  assert.equal(removed.length, 1);
  assert.equal(a.frames.items.filter((f) => f.event === 'pusher_internal:member_removed').length, 1);
});

test('numeric user_id is emitted as a string', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-numeric';
  const a = await ctx.connectedClient({ presence: ANN });
  const { channel: chA } = await a.subscribe(CH);
  const added = a.on(chA, 'pusher:member_added');
  const b = await ctx.connectedClient({ presence: { user_id: 10, user_info: { name: 'Mr. Channels' } } });
  const { data: membersB } = await b.subscribe(CH);
  assert.deepEqual(Object.keys(membersB.members).sort(), ['10', 'u1']);
  const raw = b.frames.items.find((f) => f.event === 'pusher_internal:subscription_succeeded');
  assert.deepEqual([...raw.data.presence.ids].sort(), ['10', 'u1']);
  const ev = await added.nth(1, 'member_added');
  assert.deepEqual(ev.data, { id: '10', info: { name: 'Mr. Channels' } });
  const frame = a.frames.items.find((f) => f.event === 'pusher_internal:member_added');
  assert.equal(frame.data.user_id, '10');
});

test('presence via signed-in user (auth without channel_data)', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  const c = await ctx.connectedClient({
    user: { id: 'signed-7', user_info: { name: 'Sig' } },
    options: {
      channelAuthorization: {
        // no presence data: the signature covers socket_id:channel only (§2.3, §3.1)
        customHandler: ({ socketId, channelName }, cb) => cb(null, sdk.authorizeChannel(socketId, channelName)),
      },
    },
  });
  await c.signin();
  const { data: members } = await c.subscribe('presence-signed');
  assert.equal(members.count, 1);
  assert.deepEqual(members.me, { id: 'signed-7', info: { name: 'Sig' } });
  const sub = c.frames.items.find(
    (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === 'presence-signed',
  );
  assert.deepEqual(sub.data, { presence: { ids: ['signed-7'], hash: { 'signed-7': { name: 'Sig' } }, count: 1 } });
});

test('wire: presence without channel_data on a connection that is not signed in -> AuthError', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  const { socketId } = await r.established();
  const { auth } = ctx.sdk().authorizeChannel(socketId, 'presence-nodata');
  r.send({ event: 'pusher:subscribe', data: { channel: 'presence-nodata', auth } });
  const err = await r.waitMsg((m) => m.event === 'pusher:subscription_error', 'subscription_error');
  assert.equal(err.channel, 'presence-nodata');
  const data = JSON.parse(err.data);
  assert.equal(data.type, 'AuthError');
  assert.equal(data.status, 401);
  r.send({ event: 'pusher:ping', data: {} });
  await r.waitMsg((m) => m.event === 'pusher:pong', 'pong: socket still open');
});

test('unsubscribing (not only disconnecting) removes the member', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-unsub';
  const a = await ctx.connectedClient({ presence: ANN });
  const { channel: chA } = await a.subscribe(CH);
  const removed = a.on(chA, 'pusher:member_removed');
  const b = await ctx.connectedClient({ presence: BOB });
  await b.subscribe(CH);
  await a.waitFrame((f) => f.event === 'pusher_internal:member_added', 'member_added');
  b.pusher.unsubscribe(CH);
  const ev = await removed.nth(1, 'member_removed after unsubscribe');
  assert.deepEqual(ev.data, { id: 'u2', info: { name: 'Bob' } });
  const frame = a.frames.items.find((f) => f.event === 'pusher_internal:member_removed');
  assert.deepEqual(frame, { event: 'pusher_internal:member_removed', channel: CH, data: { user_id: 'u2' } });
  assert.equal(b.state, 'connected');
});

test('user_info over 1 KB -> subscription_error LimitReached', { timeout: TEST_TIMEOUT }, async () => {
  const big = { user_id: 'big', user_info: { blob: 'x'.repeat(1100) } };
  const c = await ctx.connectedClient({ presence: big });
  const { result } = c.subscribeRaw('presence-big');
  const first = await result.nth(1, 'subscription result');
  assert.equal(first.event, 'pusher:subscription_error');
  assert.equal(first.data.type, 'LimitReached');
  assert.equal(first.data.status, 4301);
  assert.equal(c.state, 'connected');
});

test('a numeric user_id as PHP writes it (10.0) is the member "10": members.me works, one member', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-numeric';
  // An auth endpoint in PHP: json_encode(['user_id' => 10.0, ...]) writes 10.0.
  const channelData = '{"user_id":10.0,"user_info":{"name":"Ten"}}';
  const phpAuth = {
    customHandler: ({ socketId, channelName }, cb) => {
      const sig = crypto
        .createHmac('sha256', APPS.main.secret)
        .update(`${socketId}:${channelName}:${channelData}`)
        .digest('hex');
      cb(null, { auth: `${APPS.main.key}:${sig}`, channel_data: channelData });
    },
  };
  const php = await ctx.connectedClient({ options: { channelAuthorization: phpAuth } });
  const { channel: chPhp, data: membersPhp } = await php.subscribe(CH);
  assert.equal(membersPhp.count, 1);
  // pusher-js looks itself up by String(JSON.parse(channel_data).user_id), i.e. "10".
  assert.deepEqual(membersPhp.me, { id: 10, info: { name: 'Ten' } });
  const added = php.on(chPhp, 'pusher:member_added');

  // The same user from a Node backend (JSON.stringify writes 10): a second tab, not a second member.
  const node = await ctx.connectedClient({ presence: { user_id: 10, user_info: { name: 'Ten' } } });
  const { data: membersNode } = await node.subscribe(CH);
  assert.equal(membersNode.count, 1);
  assert.deepEqual(membersNode.me, { id: 10, info: { name: 'Ten' } });
  assert.deepEqual(memberList(membersNode), [{ id: '10', info: { name: 'Ten' } }]);
  const res = await ctx.sdk().get({ path: `/channels/${CH}/users` });
  assert.deepEqual(await res.json(), { users: [{ id: '10' }] });
  assert.equal(added.length, 0);
  assert.equal(chPhp.members.count, 1);
});
