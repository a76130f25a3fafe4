// PROTOCOL.md §5.5, §6.8: terminate a user's connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT, useHerald } from './harness.mjs';

const ctx = useHerald();

test('terminateUserConnections closes every connection of the user with 4009; others stay', { timeout: TEST_TIMEOUT }, async () => {
  const victim1 = await ctx.connectedClient({ user: { id: 'term-u1' } });
  const victim2 = await ctx.connectedClient({ user: { id: 'term-u1' } });
  const other = await ctx.connectedClient({ user: { id: 'term-u2' } });
  const anon = await ctx.connectedClient();
  await victim1.signin();
  await victim2.signin();
  await other.signin();
  await anon.subscribe('term-public');
  const otherEvents = other.on(other.pusher.user, 'still-here');

  const res = await ctx.sdk().terminateUserConnections('term-u1');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});

  for (const v of [victim1, victim2]) {
    await v.states.until((s) => s[s.length - 1] === 'disconnected', `${v.label} disconnected`);
    // the close code is what pusher-js acts on: 4009 is in 4000-4099 -> 'refused' -> no reconnect
    const wsErr = v.errors.items.find((e) => e.type === 'WebSocketError');
    assert.ok(wsErr, `WebSocketError recorded: ${JSON.stringify(v.errors.items)}`);
    assert.equal(wsErr.error.data.code, 4009);
  }

  // unrelated connections keep working
  await ctx.sdk().sendToUser('term-u2', 'still-here', { ok: 1 });
  await ctx.sdk().trigger('term-public', 'still-here', { ok: 2 });
  const ev = await otherEvents.nth(1, 'event for term-u2');
  assert.deepEqual(ev.data, { ok: 1 });
  const pub = await anon.waitEvent('term-public', 'still-here');
  assert.deepEqual(pub.data, { ok: 2 });
  assert.equal(other.state, 'connected');
  assert.equal(anon.state, 'connected');
  assert.deepEqual(other.states.items, ['connecting', 'connected']);
  assert.deepEqual(anon.states.items, ['connecting', 'connected']);
  // the victims did not reconnect in the meantime
  assert.deepEqual(victim1.states.items, ['connecting', 'connected', 'disconnected']);
  assert.deepEqual(victim2.states.items, ['connecting', 'connected', 'disconnected']);
});

test('wire: terminated connection gets pusher:error 4009 then close 4009', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw();
  const { socketId } = await r.established();
  r.send({ event: 'pusher:signin', data: ctx.sdk().authenticateUser(socketId, { id: 'term-raw' }) });
  await r.waitMsg((m) => m.event === 'pusher:signin_success', 'signin_success');
  await ctx.sdk().terminateUserConnections('term-raw');
  const err = await r.waitMsg((m) => m.event === 'pusher:error', 'pusher:error');
  assert.equal(err.data.code, 4009);
  assert.equal(typeof err.data.message, 'string');
  const close = await r.closed();
  assert.equal(close.code, 4009);
});

test('presence member that never signed in is not terminated', { timeout: TEST_TIMEOUT }, async () => {
  const member = await ctx.connectedClient({ presence: { user_id: 'term-p' } });
  await member.subscribe('presence-term');
  // one SDK (one node) for both requests: the marker is published after the terminate request
  const sdk = ctx.sdk();
  const res = await sdk.terminateUserConnections('term-p');
  assert.equal(res.status, 200);
  await sdk.trigger('presence-term', 'after', {});
  await member.waitEvent('presence-term', 'after');
  assert.equal(member.state, 'connected');
  assert.deepEqual(member.states.items, ['connecting', 'connected']);
});
