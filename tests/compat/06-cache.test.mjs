// PROTOCOL.md §2.8: cache channels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, TEST_TIMEOUT, useHerald } from './harness.mjs';

const ctx = useHerald();

// app-1 has subscription_count on; those frames are orthogonal to caching and left out here
function channelFrames(c, name) {
  return c.frames.items
    .filter((f) => f.channel === name && f.event !== 'pusher_internal:subscription_count')
    .map((f) => [f.event, f.data]);
}

test('cache channel: a late subscriber gets the last event right after subscription_succeeded', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  await sdk.trigger('cache-x', 'price', { v: 1 });
  await sdk.trigger('cache-x', 'price', { v: 2 });
  const c = await ctx.connectedClient();
  const { channel, result } = c.subscribeRaw('cache-x');
  const got = c.on(channel, ['price', 'pusher:cache_miss']);
  await result.nth(1, 'subscription_succeeded');
  const ev = await got.nth(1, 'cached event');
  assert.equal(ev.event, 'price');
  assert.deepEqual(ev.data, { v: 2 });
  assert.deepEqual(channelFrames(c, 'cache-x'), [
    ['pusher_internal:subscription_succeeded', {}],
    ['price', { v: 2 }],
  ]);
});

test('empty cache channel: pusher:cache_miss after subscription_succeeded', { timeout: TEST_TIMEOUT }, async () => {
  const c = await ctx.connectedClient();
  const { channel, result } = c.subscribeRaw('cache-empty');
  const miss = c.on(channel, 'pusher:cache_miss');
  await result.nth(1, 'subscription_succeeded');
  assert.equal(result.items[0].event, 'pusher:subscription_succeeded');
  await miss.nth(1, 'pusher:cache_miss');
  assert.deepEqual(
    channelFrames(c, 'cache-empty').map(([event]) => event),
    ['pusher_internal:subscription_succeeded', 'pusher:cache_miss'],
  );
});

test('cache channel: live subscribers still get every event', { timeout: TEST_TIMEOUT }, async () => {
  const c = await ctx.connectedClient();
  const { channel } = await c.subscribe('cache-live');
  const got = c.on(channel, 'tick');
  const sdk = ctx.sdk();
  await sdk.trigger('cache-live', 'tick', { i: 1 });
  await sdk.trigger('cache-live', 'tick', { i: 2 });
  await got.nth(2, 'two ticks');
  assert.deepEqual(
    got.items.map((e) => e.data),
    [{ i: 1 }, { i: 2 }],
  );
});

test('HTTP: GET /channels/{cache}?info=cache returns the cached data string and a ttl', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  await sdk.trigger('cache-info', 'price', { v: 'cached' });
  const res = await sdk.get({ path: '/channels/cache-info', params: { info: 'cache' } });
  const body = await res.json();
  assert.equal(body.occupied, false);
  assert.equal(body.cache.data, '{"v":"cached"}');
  assert.equal(typeof body.cache.ttl, 'number');
  assert.ok(body.cache.ttl > 0 && body.cache.ttl <= 1800, `ttl ${body.cache.ttl} within (0, 1800]`);
  const empty = await (await sdk.get({ path: '/channels/cache-never', params: { info: 'cache' } })).json();
  assert.deepEqual(empty, { occupied: false, cache: null });
});

test('private-cache: needs a valid auth, then serves the cache', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  await sdk.trigger('private-cache-x', 'state', { s: 'ok' });

  const bad = await ctx.connectedClient({ authSdk: ctx.sdk(APPS.main, { secret: 'wrong' }) });
  const { result: badResult } = bad.subscribeRaw('private-cache-x');
  const err = await badResult.nth(1, 'subscription result');
  assert.equal(err.event, 'pusher:subscription_error');
  assert.equal(err.data.type, 'AuthError');
  assert.equal(err.data.status, 401);
  assert.deepEqual(bad.appFrames('private-cache-x'), [], 'no cached event leaked to an unauthorized socket');

  const good = await ctx.connectedClient();
  const { channel, result } = good.subscribeRaw('private-cache-x');
  const got = good.on(channel, 'state');
  await result.nth(1);
  assert.equal(result.items[0].event, 'pusher:subscription_succeeded');
  const ev = await got.nth(1, 'cached state');
  assert.deepEqual(ev.data, { s: 'ok' });
});

test('client events are not stored in the cache', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'private-cache-client';
  const sdk = ctx.sdk();
  await sdk.trigger(CH, 'server-ev', { from: 'server' });
  const a = await ctx.connectedClient();
  const { channel } = await a.subscribe(CH);
  await a.waitEvent(CH, 'server-ev');
  channel.trigger('client-ev', { from: 'client' });
  // a second subscriber (that also sees client events live) proves the client event was processed
  const b = await ctx.connectedClient();
  const { channel: chB } = await b.subscribe(CH);
  await b.waitEvent(CH, 'server-ev');
  channel.trigger('client-ev2', { from: 'client' });
  await b.waitEvent(CH, 'client-ev2');
  const c = await ctx.connectedClient();
  const { channel: chC, result } = c.subscribeRaw(CH);
  const got = c.on(chC, ['server-ev', 'client-ev', 'client-ev2']);
  await result.nth(1);
  const ev = await got.nth(1, 'cached event');
  assert.equal(ev.event, 'server-ev');
  assert.deepEqual(ev.data, { from: 'server' });
  void chB;
});
