// PROTOCOL.md §5.1–§5.4: sign-in, server-to-user, watchlist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, TEST_TIMEOUT, pollUntil, useHerald } from './harness.mjs';

const ctx = useHerald();

test('pusher.signin(): signin_success echoes user_data verbatim', { timeout: TEST_TIMEOUT }, async () => {
  const user = { id: 'u1', user_info: { name: 'Ann', tags: ['a', 'b'] } };
  const c = await ctx.connectedClient({ user });
  const data = await c.signin();
  assert.equal(typeof data.user_data, 'string');
  assert.equal(data.user_data, JSON.stringify(user), 'user_data is echoed byte for byte');
  assert.deepEqual(c.pusher.user.user_data, user);
  // pusher-js then subscribes to #server-to-user-u1 (§5.3)
  const sub = await c.waitFrame(
    (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === '#server-to-user-u1',
    '#server-to-user-u1 subscription_succeeded',
  );
  assert.deepEqual(sub.data, {});
});

test('sendToUser reaches every connection signed in as that user and nobody else', { timeout: TEST_TIMEOUT }, async () => {
  const u1a = await ctx.connectedClient({ user: { id: 'u1' } });
  const u1b = await ctx.connectedClient({ user: { id: 'u1' } });
  const u2 = await ctx.connectedClient({ user: { id: 'u2' } });
  const anon = await ctx.connectedClient();
  await u1a.signin();
  await u1b.signin();
  await u2.signin();
  await anon.subscribe('anon-sentinel');
  const recs = [u1a, u1b, u2].map((c) => c.on(c.pusher.user, ['ev', 'sentinel']));

  const res = await ctx.sdk().sendToUser('u1', 'ev', { hello: 'u1' });
  assert.equal(res.status, 200);
  for (const rec of recs.slice(0, 2)) {
    const got = await rec.nth(1, 'ev for u1');
    assert.deepEqual(got, { event: 'ev', data: { hello: 'u1' }, metadata: undefined });
  }
  const frame = u1a.frames.items.find((f) => f.event === 'ev');
  assert.equal(frame.channel, '#server-to-user-u1');

  await ctx.sdk().sendToUser('u2', 'sentinel', { s: 2 });
  await ctx.sdk().trigger('anon-sentinel', 'sentinel', {});
  await recs[2].nth(1, 'sentinel for u2');
  await anon.waitEvent('anon-sentinel', 'sentinel');
  assert.deepEqual(recs[2].items.map((e) => e.event), ['sentinel']);
  assert.equal(anon.frames.items.filter((f) => f.event === 'ev').length, 0);
  assert.deepEqual(recs[0].items.map((e) => e.event), ['ev']);
  assert.deepEqual(recs[1].items.map((e) => e.event), ['ev']);
});

test('watchlist: offline at sign-in, online when u2 signs in, offline when u2 leaves', { timeout: TEST_TIMEOUT }, async () => {
  const w = await ctx.connectedClient({ user: { id: 'watcher', watchlist: ['wl-u2'] } });
  const wl = w.on(w.pusher.user.watchlist, ['online', 'offline']);
  await w.signin();
  const first = await wl.nth(1, 'initial watchlist status');
  assert.deepEqual(first, { event: 'offline', data: { name: 'offline', user_ids: ['wl-u2'] }, metadata: undefined });

  const u2 = await ctx.connectedClient({ user: { id: 'wl-u2' } });
  await u2.signin();
  const online = await wl.nth(2, 'online event');
  assert.deepEqual(online, { event: 'online', data: { name: 'online', user_ids: ['wl-u2'] }, metadata: undefined });

  u2.disconnect();
  const offline = await wl.nth(3, 'offline event');
  assert.deepEqual(offline, { event: 'offline', data: { name: 'offline', user_ids: ['wl-u2'] }, metadata: undefined });
  assert.equal(wl.length, 3);

  const raw = w.frames.items.filter((f) => f.event === 'pusher_internal:watchlist_events');
  assert.equal(raw.length, 3);
  assert.equal(raw[0].channel, undefined, 'watchlist events have no channel');
});

test('watchlist: a watched user already online is reported online at sign-in; two tabs count once', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  const tab1 = await ctx.connectedClient({ user: { id: 'wl-busy' } });
  const tab2 = await ctx.connectedClient({ user: { id: 'wl-busy' } });
  await tab1.signin();
  await tab2.signin();
  await tab1.subscribe('busy-tabs');
  await tab2.subscribe('busy-tabs');
  const w = await ctx.connectedClient({ user: { id: 'watcher2', watchlist: ['wl-busy', 'wl-nobody'] } });
  const wl = w.on(w.pusher.user.watchlist, ['online', 'offline']);
  const userEvents = w.on(w.pusher.user, 'sentinel');
  await w.signin();
  await wl.nth(2, 'initial statuses');
  const initial = Object.fromEntries(wl.items.map((e) => [e.event, e.data.user_ids]));
  assert.deepEqual(initial, { online: ['wl-busy'], offline: ['wl-nobody'] });

  // closing one of two tabs does not make the user offline
  tab1.disconnect();
  await pollUntil(async () => {
    const body = await (await sdk.get({ path: '/channels/busy-tabs', params: { info: 'subscription_count' } })).json();
    return { ok: body.subscription_count === 1, value: body };
  }, 'first tab gone');
  // marker through the node that handled tab1's leave (cluster mode: it would announce offline)
  await ctx.sdkOn(tab1).sendToUser('watcher2', 'sentinel', {});
  await userEvents.nth(1, 'sentinel to the watcher');
  assert.equal(wl.length, 2, `no watchlist event while a tab is open: ${JSON.stringify(wl.items)}`);

  tab2.disconnect();
  const off = await wl.nth(3, 'offline after last tab');
  assert.deepEqual(off.data, { name: 'offline', user_ids: ['wl-busy'] });
  // exactly one offline: a late one for tab1 would show up as a fourth event
  await sdk.sendToUser('watcher2', 'sentinel', {});
  await userEvents.nth(2, 'second sentinel to the watcher');
  assert.equal(wl.length, 3, `one offline event only: ${JSON.stringify(wl.items)}`);
});

test('sign-in with a bad signature -> pusher:error (code null), connection stays open', { timeout: TEST_TIMEOUT }, async () => {
  const c = await ctx.connectedClient({
    user: { id: 'u1' },
    authSdk: ctx.sdk(APPS.main, { secret: 'wrong' }),
  });
  const errs = c.on(c.pusher, 'pusher:error');
  c.pusher.signin();
  const { data } = await errs.nth(1, 'pusher:error');
  assert.equal(data.code, null);
  assert.equal(typeof data.message, 'string');
  assert.equal(c.pusher.user.user_data, null);
  assert.equal(c.state, 'connected');
  const { data: sub } = await c.subscribe('after-bad-signin');
  assert.deepEqual(sub, {});
  assert.deepEqual(c.states.items, ['connecting', 'connected']);
});

test('wire: #server-to-user- of another user, or when not signed in -> AuthError 401', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  const { socketId } = await r.established();
  r.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-victim', auth: '' } });
  const e1 = await r.waitMsg((m) => m.event === 'pusher:subscription_error', 'error while not signed in');
  assert.equal(e1.channel, '#server-to-user-victim');
  assert.equal(JSON.parse(e1.data).type, 'AuthError');
  assert.equal(JSON.parse(e1.data).status, 401);

  r.send({ event: 'pusher:signin', data: ctx.sdk().authenticateUser(socketId, { id: 'me' }) });
  const ok = await r.waitMsg((m) => m.event === 'pusher:signin_success', 'signin_success');
  assert.equal(typeof ok.data, 'string');
  assert.deepEqual(JSON.parse(ok.data), { user_data: '{"id":"me"}' });

  r.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-victim', auth: '' } });
  r.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-me', auth: '' } });
  const mine = await r.waitMsg(
    (m) => m.channel === '#server-to-user-me',
    'reply for own #server-to-user- channel',
  );
  assert.deepEqual(mine, { event: 'pusher_internal:subscription_succeeded', channel: '#server-to-user-me', data: '{}' });
  const errors = r.frames.items.filter((f) => f.msg && f.msg.event === 'pusher:subscription_error');
  assert.equal(errors.length, 2, 'the second attempt on the victim channel is refused too');
  assert.equal(JSON.parse(errors[1].msg.data).type, 'AuthError');

  // an unknown '#' name is an invalid channel
  r.send({ event: 'pusher:subscribe', data: { channel: '#whatever', auth: '' } });
  const e3 = await r.waitMsg((m) => m.channel === '#whatever', 'reply for #whatever');
  assert.equal(e3.event, 'pusher:subscription_error');
  assert.equal(JSON.parse(e3.data).type, 'InvalidChannel');
  assert.equal(JSON.parse(e3.data).status, 400);
});

test('watchlist over 100 ids: sign-in succeeds plus pusher:error 4302', { timeout: TEST_TIMEOUT }, async () => {
  const watchlist = Array.from({ length: 101 }, (_, i) => `many-${i}`);
  const c = await ctx.connectedClient({ user: { id: 'many-watcher', watchlist } });
  const errs = c.on(c.pusher, 'pusher:error');
  const wl = c.on(c.pusher.user.watchlist, ['online', 'offline']);
  const data = await c.signin();
  assert.deepEqual(JSON.parse(data.user_data).watchlist, watchlist);
  const err = await errs.nth(1, 'pusher:error 4302');
  assert.equal(err.data.code, 4302);
  assert.equal(typeof err.data.message, 'string');
  const off = await wl.nth(1, 'initial offline statuses');
  assert.deepEqual(off.data, { name: 'offline', user_ids: watchlist.slice(0, 100) });
  assert.equal(c.state, 'connected');
});
