// PROTOCOL.md §2.5, §3.1, §3.2: private channels and signature checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, TEST_TIMEOUT, useHerald } from './harness.mjs';

const ctx = useHerald();

test('private channel: customHandler auth succeeds and events arrive', { timeout: TEST_TIMEOUT }, async () => {
  const c = await ctx.connectedClient();
  const { channel, data } = await c.subscribe('private-chat');
  assert.deepEqual(data, {});
  assert.equal(channel.subscribed, true);
  const got = c.on(channel, 'secret-news');
  await ctx.sdk().trigger('private-chat', 'secret-news', { headline: 'private' });
  const ev = await got.nth(1, 'secret-news');
  assert.deepEqual(ev.data, { headline: 'private' });
});

async function assertAuthError(c, name) {
  const { channel, result } = c.subscribeRaw(name);
  const first = await result.nth(1, `subscription result for ${name}`);
  assert.equal(first.event, 'pusher:subscription_error');
  assert.equal(first.data.type, 'AuthError');
  assert.equal(first.data.status, 401);
  assert.equal(typeof first.data.error, 'string');
  assert.ok(first.data.error.length > 0);
  assert.equal(channel.subscribed, false);
  // the error came from the server, as a channel-scoped frame (§2.5)
  const frame = c.frames.items.find((f) => f.event === 'pusher:subscription_error');
  assert.ok(frame, 'server sent pusher:subscription_error');
  assert.equal(frame.channel, name);
  return first;
}

test('private channel signed with the wrong secret -> subscription_error AuthError 401', { timeout: TEST_TIMEOUT }, async () => {
  const badSdk = ctx.sdk(APPS.main, { secret: 'not-the-secret' });
  const c = await ctx.connectedClient({ authSdk: badSdk });
  await assertAuthError(c, 'private-chat');
  // the socket is kept open (§2.5 "Never close the connection for a subscription failure")
  assert.equal(c.state, 'connected');
  const { data } = await c.subscribe('public-after-error');
  assert.deepEqual(data, {});
  assert.deepEqual(c.states.items, ['connecting', 'connected']);
});

test('auth whose key part is not the app key is refused even with a valid HMAC', { timeout: TEST_TIMEOUT }, async () => {
  // same secret, different key: the HMAC part is correct, the key part is wrong (§3.2)
  const wrongKey = ctx.sdk(APPS.main, { key: 'someone-elses-key' });
  const c = await ctx.connectedClient({ authSdk: wrongKey });
  await assertAuthError(c, 'private-keycheck');
});

test('auth signed for another socket id is refused', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  const c = await ctx.connectedClient({
    options: {
      channelAuthorization: {
        customHandler: ({ channelName }, cb) => cb(null, sdk.authorizeChannel('1234.5678', channelName)),
      },
    },
  });
  await assertAuthError(c, 'private-othersocket');
});

test('wire: private subscribe with empty auth -> AuthError, socket stays open', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  await r.established();
  r.send({ event: 'pusher:subscribe', data: { channel: 'private-noauth', auth: '' } });
  const err = await r.waitMsg((m) => m.event === 'pusher:subscription_error', 'subscription_error');
  assert.equal(err.channel, 'private-noauth');
  assert.equal(typeof err.data, 'string', 'subscription_error data is a JSON string (§0)');
  const data = JSON.parse(err.data);
  assert.equal(data.type, 'AuthError');
  assert.equal(data.status, 401);
  r.send({ event: 'pusher:ping', data: {} });
  await r.waitMsg((m) => m.event === 'pusher:pong', 'pong after error');
  assert.equal(r.closes.length, 0);
});

test('wire: a valid private auth computed by the SDK is accepted', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  const { socketId } = await r.established();
  const auth = ctx.sdk().authorizeChannel(socketId, 'private-wire');
  assert.deepEqual(Object.keys(auth), ['auth']);
  r.send({ event: 'pusher:subscribe', data: { channel: 'private-wire', ...auth } });
  const ok = await r.waitMsg((m) => m.event === 'pusher_internal:subscription_succeeded', 'subscription_succeeded');
  assert.deepEqual(ok, { event: 'pusher_internal:subscription_succeeded', channel: 'private-wire', data: '{}' });
});

test('wire: invalid channel name -> InvalidChannel 400', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  await r.established();
  const name = 'bad channel!';
  r.send({ event: 'pusher:subscribe', data: { channel: name, auth: '' } });
  const err = await r.waitMsg((m) => m.event === 'pusher:subscription_error', 'subscription_error');
  assert.equal(err.channel, name);
  const data = JSON.parse(err.data);
  assert.equal(data.type, 'InvalidChannel');
  assert.equal(data.status, 400);
});

test('wire: channel name longer than 164 chars -> InvalidChannel 400; 164 is fine', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  await r.established();
  const ok164 = 'a'.repeat(164);
  const bad165 = 'b'.repeat(165);
  r.send({ event: 'pusher:subscribe', data: { channel: ok164, auth: '' } });
  r.send({ event: 'pusher:subscribe', data: { channel: bad165, auth: '' } });
  const ok = await r.waitMsg(
    (m) => m.channel === ok164 && m.event === 'pusher_internal:subscription_succeeded',
    '164-char subscription_succeeded',
  );
  assert.equal(ok.data, '{}');
  const err = await r.waitMsg((m) => m.channel === bad165, '165-char reply');
  assert.equal(err.event, 'pusher:subscription_error');
  assert.deepEqual(
    { type: JSON.parse(err.data).type, status: JSON.parse(err.data).status },
    { type: 'InvalidChannel', status: 400 },
  );
});
