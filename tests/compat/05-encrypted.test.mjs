// PROTOCOL.md §3.3, §2.11: end-to-end encrypted channels. Herald never sees the master key:
// the SDK encrypts, pusher-js decrypts (the Node build of pusher-js already bundles tweetnacl).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT, useHerald } from './harness.mjs';

const ctx = useHerald();

test('private-encrypted: SDK-encrypted event is decrypted by pusher-js', { timeout: TEST_TIMEOUT }, async () => {
  const c = await ctx.connectedClient();
  const { channel, data } = await c.subscribe('private-encrypted-x');
  assert.deepEqual(data, {});
  const got = c.on(channel, 'secret');
  const payload = { message: 'top secret', n: 7, list: ['a', 'b'] };
  const res = await ctx.sdk().trigger('private-encrypted-x', 'secret', payload);
  assert.equal(res.status, 200);
  const ev = await got.nth(1, 'decrypted event');
  assert.deepEqual(ev.data, payload);
  // what travelled over the wire was ciphertext, relayed untouched
  const frame = c.frames.items.find((f) => f.event === 'secret');
  assert.equal(frame.channel, 'private-encrypted-x');
  assert.deepEqual(Object.keys(frame.data).sort(), ['ciphertext', 'nonce']);
  assert.equal(JSON.stringify(frame.data).includes('top secret'), false);
});

test('private-encrypted: pusher-js itself refuses client events', { timeout: TEST_TIMEOUT }, async () => {
  const c = await ctx.connectedClient();
  const { channel } = await c.subscribe('private-encrypted-js');
  assert.throws(() => channel.trigger('client-x', { a: 1 }), {
    message: 'Client events are not currently supported for encrypted channels',
  });
});

test('wire: a client event on private-encrypted- is refused with pusher:error and not relayed', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-encrypted-relay';
  const listener = await ctx.connectedClient();
  await listener.subscribe(CH);

  const r = ctx.raw();
  const { socketId } = await r.established();
  const auth = ctx.sdk().authorizeChannel(socketId, CH);
  assert.equal(typeof auth.shared_secret, 'string');
  r.send({ event: 'pusher:subscribe', data: { channel: CH, auth: auth.auth } });
  await r.waitMsg((m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === CH, 'subscribed');

  r.send({ event: 'client-plain', channel: CH, data: { leaked: 'plaintext' } });
  const err = await r.waitMsg((m) => m.event === 'pusher:error', 'pusher:error');
  assert.equal(err.data.code, null);
  assert.equal(typeof err.data.message, 'string');

  // sentinel, sent through the node the raw socket is on (in cluster mode a relayed client
  // event would have been published from there first): the listener must see it and nothing before
  await ctx.sdkOn(r).trigger(CH, 'sentinel', { s: 1 });
  await listener.waitEvent(CH, 'sentinel');
  assert.deepEqual(listener.appFrames(CH).map((f) => f.event), ['sentinel']);
  assert.equal(r.closes.length, 0);
});

test('private-encrypted: subscribe without auth is refused', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  await r.established();
  r.send({ event: 'pusher:subscribe', data: { channel: 'private-encrypted-noauth', auth: '' } });
  const err = await r.waitMsg((m) => m.event === 'pusher:subscription_error', 'subscription_error');
  assert.equal(err.channel, 'private-encrypted-noauth');
  assert.deepEqual(
    (({ type, status }) => ({ type, status }))(JSON.parse(err.data)),
    { type: 'AuthError', status: 401 },
  );
});

test('HTTP: trigger to several channels including an encrypted one -> 400', { timeout: TEST_TIMEOUT }, async () => {
  // the SDK refuses this itself, so hand-sign the request (§6.1)
  const res = await ctx.signed({
    method: 'POST',
    path: '/apps/app-1/events',
    body: { name: 'e', channels: ['private-encrypted-x', 'plain'], data: '{"nonce":"x","ciphertext":"y"}' },
  });
  assert.equal(res.status, 400);
  assert.equal(res.json.code, 400);
});
