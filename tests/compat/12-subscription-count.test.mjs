// PROTOCOL.md §2.9: pusher_internal:subscription_count (app-1 has the flag on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT, observe, useHerald } from './harness.mjs';

const ctx = useHerald();

const last = (rec) => rec.items[rec.items.length - 1].data.subscription_count;

test('subscription_count: 1 for the first subscriber, 2 for both after the second joins, 1 after a leave', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'my-count';
  const a = await ctx.connectedClient();
  const { channel: chA, result } = a.subscribeRaw(CH);
  const countA = a.on(chA, 'pusher:subscription_count');
  await result.nth(1, 'subscription_succeeded');
  const first = await countA.nth(1, 'first subscription_count');
  assert.deepEqual(first.data, { subscription_count: 1 });
  assert.equal(chA.subscriptionCount, 1);

  const b = await ctx.connectedClient();
  const { channel: chB } = b.subscribeRaw(CH);
  const countB = b.on(chB, 'pusher:subscription_count');
  // updates may be coalesced (at most one per channel per second): wait for the latest value
  await countA.until(() => last(countA) === 2, 'A sees subscription_count 2');
  await countB.until((items) => items.length > 0 && last(countB) === 2, 'B sees subscription_count 2');
  assert.deepEqual(
    countB.items.map((e) => e.data),
    [{ subscription_count: 2 }],
  );
  assert.deepEqual(
    countA.items.map((e) => e.data),
    [{ subscription_count: 1 }, { subscription_count: 2 }],
  );
  assert.equal(chA.subscriptionCount, 2);
  assert.equal(chB.subscriptionCount, 2);

  // wire shape
  const frame = a.frames.items.find((f) => f.event === 'pusher_internal:subscription_count');
  assert.deepEqual(frame, { event: 'pusher_internal:subscription_count', channel: CH, data: { subscription_count: 1 } });

  b.pusher.unsubscribe(CH);
  await countA.until(() => last(countA) === 1, 'A sees subscription_count 1 after B left', 5000);
  assert.equal(countA.items.length, 3);
});

test('subscription_count is not sent on presence channels', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-count';
  const a = await ctx.connectedClient({ presence: { user_id: 'pc1' } });
  await a.subscribe(CH);
  const b = await ctx.connectedClient({ presence: { user_id: 'pc2' } });
  await b.subscribe(CH);
  // negative check: updates may be coalesced for up to 1 s, so observe a bit longer than that,
  // then a marker on the channel that both must have received after anything sent before it
  await observe(1300);
  await ctx.sdk().trigger(CH, 'sentinel', {});
  await a.waitEvent(CH, 'sentinel');
  await b.waitEvent(CH, 'sentinel');
  assert.equal(
    a.frames.items.filter((f) => f.event === 'pusher_internal:subscription_count' && f.channel === CH).length,
    0,
  );
  assert.equal(
    b.frames.items.filter((f) => f.event === 'pusher_internal:subscription_count' && f.channel === CH).length,
    0,
  );
});
