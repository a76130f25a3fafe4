// PROTOCOL.md §1: connection, socket_id, ping/pong, handshake rejections (4001, 4003).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, SOCKET_ID_RE, TEST_TIMEOUT, observe, useHerald } from './harness.mjs';

const ctx = useHerald();

test('pusher-js connects and gets a well-formed socket id', { timeout: TEST_TIMEOUT }, async () => {
  const c = ctx.client();
  const connectedData = c.on(c.pusher.connection, 'connected');
  const socketId = await c.connected();
  assert.match(socketId, SOCKET_ID_RE);
  assert.equal(c.state, 'connected');
  assert.deepEqual(c.states.items, ['connecting', 'connected']);
  const { data } = await connectedData.nth(1);
  assert.equal(data.socket_id, socketId);
  // the handshake frame is consumed by pusher-js before 'message' listeners exist,
  // so nothing at all has been recorded as a frame yet
  assert.deepEqual(c.frames.items, []);
  assert.deepEqual(c.errors.items, []);
});

test('two connections get different socket ids', { timeout: TEST_TIMEOUT }, async () => {
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  assert.notEqual(a.socketId, b.socketId);
});

test('wire: first frame is connection_established with double-encoded data', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  const { socketId, activityTimeout, frame } = await r.established();
  assert.equal(frame.msg.event, 'pusher:connection_established');
  assert.equal(typeof frame.msg.data, 'string', 'data must be a JSON string (§0 double encoding)');
  assert.match(socketId, SOCKET_ID_RE);
  assert.equal(activityTimeout, 120, 'default activity_timeout is 120 s (§1.2)');
});

test('wire: pusher:ping is answered with pusher:pong', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  await r.established();
  r.send({ event: 'pusher:ping', data: {} });
  const pong = await r.waitMsg((m) => m.event === 'pusher:pong', 'pusher:pong');
  assert.deepEqual(pong, { event: 'pusher:pong', data: {} });
});

test('wire: connection without query string is accepted (treated as protocol 7)', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw(APPS.main.key, null);
  const { socketId } = await r.established();
  assert.match(socketId, SOCKET_ID_RE);
});

test('wire: unsupported protocol version closes with 4007', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw(APPS.main.key, 'protocol=3&client=js&version=8.6.0&flash=false');
  const first = await r.waitMsg(() => true, 'first frame');
  assert.equal(first.event, 'pusher:error');
  assert.equal(first.data.code, 4007);
  const close = await r.closed();
  assert.equal(close.code, 4007);
});

async function assertRefused(key, code) {
  const c = ctx.client({ key });
  await c.states.until((s) => s[s.length - 1] === 'disconnected', "state 'disconnected'");
  // pusher-js maps 4000-4099 to 'refused' -> disconnect() (protocol.ts getCloseAction, connection_manager.ts refused)
  const wsErrors = c.errors.items.filter((e) => e.type === 'WebSocketError');
  assert.equal(wsErrors.length, 1, `one WebSocketError expected, got ${JSON.stringify(c.errors.items)}`);
  assert.equal(wsErrors[0].error.type, 'PusherError');
  assert.equal(wsErrors[0].error.data.code, code);
  assert.equal(typeof wsErrors[0].error.data.message, 'string');
  // no reconnect: observe a window longer than pusher-js' 1 s back-off
  await observe(1500);
  assert.deepEqual(c.states.items, ['connecting', 'disconnected']);
  assert.equal(c.state, 'disconnected');
  assert.equal(c.socketId, undefined);
}

test('unknown app key: pusher-js gets 4001 and stays disconnected', { timeout: TEST_TIMEOUT }, async () => {
  await assertRefused('no-such-key', 4001);
});

test('disabled app: pusher-js gets 4003 and stays disconnected', { timeout: TEST_TIMEOUT }, async () => {
  await assertRefused(APPS.disabled.key, 4003);
});

async function assertRawRefused(key, code) {
  const r = ctx.raw(key);
  const first = await r.frames.nth(1, 'first frame');
  assert.ok(first.msg, `first frame must be JSON: ${first.raw}`);
  assert.equal(first.msg.event, 'pusher:error');
  assert.equal(typeof first.msg.data, 'object', 'pusher:error data is an object (§0)');
  assert.equal(first.msg.data.code, code);
  assert.equal(typeof first.msg.data.message, 'string');
  assert.ok(first.msg.data.message.length > 0);
  const close = await r.closed();
  assert.equal(close.code, code);
  assert.equal(r.frames.length, 1, 'nothing after the pusher:error frame');
}

test('wire: unknown key -> pusher:error 4001 as first frame, then close 4001', { timeout: TEST_TIMEOUT }, async () => {
  await assertRawRefused('no-such-key', 4001);
});

test('wire: disabled app -> pusher:error 4003 as first frame, then close 4003', { timeout: TEST_TIMEOUT }, async () => {
  await assertRawRefused(APPS.disabled.key, 4003);
});
