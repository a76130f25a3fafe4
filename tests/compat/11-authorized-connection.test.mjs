// PROTOCOL.md §5.6: app-4 requires an authorized connection within 1 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, TEST_TIMEOUT, useHerald } from './harness.mjs';

const ctx = useHerald();
const app = APPS.authorized;

test('idle connection is closed with 4009 after ~1 s and stays disconnected', { timeout: TEST_TIMEOUT }, async () => {
  const c = ctx.client({ app });
  await c.connected();
  const t0 = Date.now();
  await c.states.until((s) => s[s.length - 1] === 'disconnected', "state 'disconnected'", 5000);
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 700 && elapsed <= 3000, `closed after ${elapsed} ms, expected about 1000 ms`);
  const wsErr = c.errors.items.find((e) => e.type === 'WebSocketError');
  assert.ok(wsErr, `WebSocketError recorded: ${JSON.stringify(c.errors.items)}`);
  assert.equal(wsErr.error.data.code, 4009);
  assert.deepEqual(c.states.items, ['connecting', 'connected', 'disconnected']);
});

test('wire: idle connection gets pusher:error 4009 then close 4009', { timeout: TEST_TIMEOUT }, async () => {
  const r = ctx.raw(app.key);
  await r.established();
  const err = await r.waitMsg((m) => m.event === 'pusher:error', 'pusher:error', 5000);
  assert.equal(err.data.code, 4009);
  assert.equal(typeof err.data.message, 'string');
  const close = await r.closed(5000);
  assert.equal(close.code, 4009);
});

test('public subscription alone does not authorize the connection', { timeout: TEST_TIMEOUT }, async () => {
  const c = ctx.client({ app });
  await c.connected();
  await c.subscribe('public-on-app4');
  await c.states.until((s) => s[s.length - 1] === 'disconnected', "state 'disconnected'", 5000);
  assert.equal(c.errors.items.find((e) => e.type === 'WebSocketError').error.data.code, 4009);
});

// A connection that is authorized in time must survive. To prove the negative without a blind
// sleep, an idle control connection opened *after* it is used as the clock: once the control has
// been kicked, the authorized connection's own timer has long expired too.
async function assertSurvives(authorize) {
  const c = ctx.client({ app, user: { id: 'app4-user' } });
  await c.connected();
  await authorize(c);
  const control = ctx.client({ app });
  await control.connected();
  await control.states.until((s) => s[s.length - 1] === 'disconnected', 'control kicked', 5000);
  await c.subscribe('app4-sentinel');
  await ctx.sdk(app).trigger('app4-sentinel', 'alive', { ok: true });
  const ev = await c.waitEvent('app4-sentinel', 'alive');
  assert.deepEqual(ev.data, { ok: true });
  assert.equal(c.state, 'connected');
  assert.deepEqual(c.states.items, ['connecting', 'connected']);
}

test('a connection that signs in within the timeout is kept', { timeout: TEST_TIMEOUT }, async () => {
  await assertSurvives((c) => c.signin());
});

test('a connection that subscribes to a private channel within the timeout is kept', { timeout: TEST_TIMEOUT }, async () => {
  await assertSurvives((c) => c.subscribe('private-app4'));
});

test('a connection that subscribes to a presence channel within the timeout is kept', { timeout: TEST_TIMEOUT }, async () => {
  const c = ctx.client({ app, presence: { user_id: 'p4' } });
  await c.connected();
  await c.subscribe('presence-app4');
  const control = ctx.client({ app });
  await control.connected();
  await control.states.until((s) => s[s.length - 1] === 'disconnected', 'control kicked', 5000);
  await ctx.sdk(app).trigger('presence-app4', 'alive', {});
  await c.waitEvent('presence-app4', 'alive');
  assert.deepEqual(c.states.items, ['connecting', 'connected']);
});
