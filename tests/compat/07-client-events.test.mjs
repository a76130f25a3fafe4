// PROTOCOL.md §4: client events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, TEST_TIMEOUT, useHerald } from './harness.mjs';

const ctx = useHerald();

test('private channel: client event reaches the other subscriber, never the sender', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-chat';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  const { channel: chA } = await a.subscribe(CH);
  const { channel: chB } = await b.subscribe(CH);
  const gotB = b.on(chB, 'client-typing');
  const gotA = a.on(chA, 'client-typing');

  assert.equal(chA.trigger('client-typing', { text: 'hi', n: 1 }), true);
  const ev = await gotB.nth(1, 'client-typing on B');
  assert.deepEqual(ev.data, { text: 'hi', n: 1 });
  assert.deepEqual(ev.metadata, {}, 'no user_id on private channels');
  const frame = b.frames.items.find((f) => f.event === 'client-typing');
  assert.equal(frame.channel, CH);
  assert.equal(frame.user_id, undefined);

  // echo check: after an SDK event that A receives, A must have seen only that one
  await ctx.sdk().trigger(CH, 'sentinel', {});
  await a.waitEvent(CH, 'sentinel');
  assert.equal(gotA.length, 0);
  assert.deepEqual(a.appFrames(CH).map((f) => f.event), ['sentinel']);
  assert.deepEqual(a.errors.items, []);
});

test('presence channel: client event carries the sender user_id as metadata', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-chat';
  const a = await ctx.connectedClient({ presence: { user_id: 'alice', user_info: { n: 'A' } } });
  const b = await ctx.connectedClient({ presence: { user_id: 'bob', user_info: { n: 'B' } } });
  const { channel: chA } = await a.subscribe(CH);
  const { channel: chB } = await b.subscribe(CH);
  const gotB = b.on(chB, 'client-typing');
  chA.trigger('client-typing', { text: 'from alice' });
  const ev = await gotB.nth(1, 'client-typing on B');
  assert.deepEqual(ev.data, { text: 'from alice' });
  assert.deepEqual(ev.metadata, { user_id: 'alice' });
});

test('client event data is relayed verbatim (object stays an object)', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-verbatim';
  const a = await ctx.connectedClient();
  const { channel: chA } = await a.subscribe(CH);
  const r = ctx.raw();
  const { socketId } = await r.established();
  r.send({ event: 'pusher:subscribe', data: { channel: CH, ...ctx.sdk().authorizeChannel(socketId, CH) } });
  await r.waitMsg((m) => m.event === 'pusher_internal:subscription_succeeded', 'raw subscribed');
  chA.trigger('client-shape', { nested: { x: [1, 2] } });
  const msg = await r.waitMsg((m) => m.event === 'client-shape', 'client-shape');
  assert.deepEqual(msg, { event: 'client-shape', channel: CH, data: { nested: { x: [1, 2] } } });
});

async function expectClientEventError(sender, send, listener, channel) {
  const errs = sender.on(sender.pusher, 'pusher:error');
  send();
  const { data } = await errs.nth(1, 'pusher:error');
  assert.equal(data.code, null);
  assert.equal(typeof data.message, 'string');
  assert.ok(data.message.length > 0);
  // the non-closing pusher:error surfaces on the connection as a PusherError (connection.ts)
  const connErr = sender.errors.items.find((e) => e.type === 'PusherError');
  assert.deepEqual(connErr.data, data);
  // the socket stays connected and keeps working
  assert.equal(sender.state, 'connected');
  if (listener) {
    // through the sender's node: in cluster mode a relayed event would have been published there first
    await ctx.sdkOn(sender, listener.app).trigger(channel, 'sentinel', {});
    await listener.client.waitEvent(channel, 'sentinel');
    assert.deepEqual(listener.client.appFrames(channel).map((f) => f.event), ['sentinel']);
  }
  assert.deepEqual(sender.states.items, ['connecting', 'connected']);
}

test('app with client events disabled: pusher:error (code null), socket stays connected', { timeout: TEST_TIMEOUT }, async () => {
  const app = APPS.noClientEvents;
  const CH = 'private-chat';
  const a = await ctx.connectedClient({ app });
  const b = await ctx.connectedClient({ app });
  const { channel: chA } = await a.subscribe(CH);
  await b.subscribe(CH);
  await expectClientEventError(a, () => chA.trigger('client-typing', { text: 'hi' }), { client: b, app }, CH);
  // a still receives server events
  await a.waitEvent(CH, 'sentinel');
});

test('client event on a public channel is refused', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'public-chat';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  const { channel: chA } = await a.subscribe(CH);
  await b.subscribe(CH);
  await expectClientEventError(a, () => chA.trigger('client-typing', { text: 'hi' }), { client: b, app: APPS.main }, CH);
});

test('client event on a channel the socket is not subscribed to is refused', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-notmine';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  await b.subscribe(CH);
  await expectClientEventError(a, () => a.pusher.send_event('client-typing', { text: 'hi' }, CH), { client: b, app: APPS.main }, CH);
});

test('client event larger than 10 KB is refused; 10 KB is accepted', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-size';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  const { channel: chA } = await a.subscribe(CH);
  await b.subscribe(CH);
  // data is a JSON string literal: its JSON text is the content plus two quotes
  const exact = 'x'.repeat(10240 - 2);
  chA.trigger('client-big', exact);
  const ok = await b.waitEvent(CH, 'client-big');
  assert.equal(ok.data, exact);
  await expectClientEventError(a, () => chA.trigger('client-too-big', exact + 'y'), null, CH);
  await ctx.sdkOn(a).trigger(CH, 'sentinel', {});
  await b.waitEvent(CH, 'sentinel');
  assert.deepEqual(b.appFrames(CH).map((f) => f.event), ['client-big', 'sentinel']);
});

test('client events over 10 per second: pusher:error 4301, extra events dropped, socket kept', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-rate';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  const { channel: chA } = await a.subscribe(CH);
  await b.subscribe(CH);
  const errs = a.on(a.pusher, 'pusher:error');
  // one synchronous burst: far faster than 10/s
  for (let i = 0; i < 12; i++) chA.trigger('client-burst', { i });
  const first = await errs.nth(1, 'rate limit error');
  assert.deepEqual(first.data, { code: 4301, message: first.data.message });
  assert.equal(typeof first.data.message, 'string');
  // wait for the second rejection first, then send the marker through the sender's node, which
  // published the ten accepted events before (cluster mode: a's node relays them through Redis)
  await errs.nth(2, 'second rate limit error');
  await ctx.sdkOn(a).trigger(CH, 'sentinel', {});
  await b.waitEvent(CH, 'sentinel');
  await a.waitEvent(CH, 'sentinel');
  const got = b.appFrames(CH).filter((f) => f.event === 'client-burst').map((f) => f.data.i);
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the first 10 pass, in order');
  assert.equal(errs.length, 2, 'one pusher:error per rejected event');
  assert.ok(errs.items.every((e) => e.data.code === 4301));
  // 4301 never closes (§1.6): pusher-js stays connected
  assert.deepEqual(a.states.items, ['connecting', 'connected']);
});
