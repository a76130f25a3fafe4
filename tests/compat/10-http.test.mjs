// PROTOCOL.md §6: HTTP API through the real `pusher` SDK, plus hand-signed requests (§6.1)
// for what the SDK will not send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS, TEST_TIMEOUT, expectRequestError, pollUntil, useHerald } from './harness.mjs';

const ctx = useHerald();

/** Occupies: http-pub-1 (2 sockets), http-pub-2 (1), presence-http (u1 twice, u2 once). */
async function occupy() {
  // sockets of the previous test are closed asynchronously: wait until the server saw it
  const sdk = ctx.sdk();
  await pollUntil(async () => {
    const body = await (await sdk.get({ path: '/channels' })).json();
    return { ok: Object.keys(body.channels || {}).length === 0, value: body };
  }, 'no occupied channel left from the previous test');
  const a = await ctx.connectedClient({ presence: { user_id: 'u1', user_info: { n: 1 } } });
  const b = await ctx.connectedClient({ presence: { user_id: 'u1', user_info: { n: 1 } } });
  const c = await ctx.connectedClient({ presence: { user_id: 'u2', user_info: { n: 2 } } });
  await a.subscribe('http-pub-1');
  await b.subscribe('http-pub-1');
  await a.subscribe('http-pub-2');
  await a.subscribe('presence-http');
  await b.subscribe('presence-http');
  await c.subscribe('presence-http');
  return { a, b, c };
}

async function json(res) {
  assert.match(res.headers.get('content-type') || '', /^application\/json/);
  return res.json();
}

// Runs first in this file, so no channel of an earlier test is still occupied.
test('GET /channels lists exactly the occupied channels', { timeout: TEST_TIMEOUT }, async () => {
  await occupy();
  // a signed-in user has a #server-to-user- channel, which is never listed (§5.3)
  const signed = await ctx.connectedClient({ user: { id: 'listed-not' } });
  await signed.signin();
  await signed.waitFrame((f) => f.channel === '#server-to-user-listed-not', '#server-to-user- subscribed');
  const sdk = ctx.sdk();
  const all = await json(await sdk.get({ path: '/channels' }));
  assert.deepEqual(all, { channels: { 'http-pub-1': {}, 'http-pub-2': {}, 'presence-http': {} } });

  const filtered = await json(await sdk.get({ path: '/channels', params: { filter_by_prefix: 'http-pub-' } }));
  assert.deepEqual(filtered, { channels: { 'http-pub-1': {}, 'http-pub-2': {} } });

  const presence = await json(
    await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }),
  );
  assert.deepEqual(presence, { channels: { 'presence-http': { user_count: 2 } } });

  // user_count needs a presence- prefix filter (§6.5)
  const err = await expectRequestError(sdk.get({ path: '/channels', params: { info: 'user_count' } }));
  assert.equal(err.status, 400);
  assert.equal(JSON.parse(err.body).code, 400);
});

test('GET /channels/{name} with user_count and subscription_count', { timeout: TEST_TIMEOUT }, async () => {
  await occupy();
  const sdk = ctx.sdk();
  const p = await json(
    await sdk.get({ path: '/channels/presence-http', params: { info: 'user_count,subscription_count' } }),
  );
  assert.deepEqual(p, { occupied: true, user_count: 2, subscription_count: 3 });

  const pub = await json(await sdk.get({ path: '/channels/http-pub-1', params: { info: 'subscription_count' } }));
  assert.deepEqual(pub, { occupied: true, subscription_count: 2 });

  const plain = await json(await sdk.get({ path: '/channels/http-pub-2' }));
  assert.deepEqual(plain, { occupied: true });

  const empty = await json(await sdk.get({ path: '/channels/http-nobody-here' }));
  assert.deepEqual(empty, { occupied: false });
  const emptyCount = await json(
    await sdk.get({ path: '/channels/http-nobody-here', params: { info: 'subscription_count' } }),
  );
  assert.deepEqual(emptyCount, { occupied: false, subscription_count: 0 });

  // user_count on a non-presence channel is not valid (§6.6)
  const err = await expectRequestError(sdk.get({ path: '/channels/http-pub-1', params: { info: 'user_count' } }));
  assert.equal(err.status, 400);
});

test('GET /channels/{presence}/users lists distinct user ids', { timeout: TEST_TIMEOUT }, async () => {
  await occupy();
  const sdk = ctx.sdk();
  const body = await json(await sdk.get({ path: '/channels/presence-http/users' }));
  assert.deepEqual(Object.keys(body), ['users']);
  assert.deepEqual(
    [...body.users].sort((x, y) => (x.id < y.id ? -1 : 1)),
    [{ id: 'u1' }, { id: 'u2' }],
  );
  const err = await expectRequestError(sdk.get({ path: '/channels/http-pub-1/users' }));
  assert.equal(err.status, 400);
});

test('trigger with info returns subscription_count / user_count per channel', { timeout: TEST_TIMEOUT }, async () => {
  await occupy();
  const sdk = ctx.sdk();
  const pub = await json(await sdk.trigger('http-pub-1', 'ev', {}, { info: 'subscription_count' }));
  assert.deepEqual(pub, { channels: { 'http-pub-1': { subscription_count: 2 } } });

  const presence = await json(
    await sdk.trigger('presence-http', 'ev', {}, { info: 'user_count,subscription_count' }),
  );
  assert.deepEqual(presence, { channels: { 'presence-http': { user_count: 2, subscription_count: 3 } } });

  const multi = await json(await sdk.trigger(['http-pub-1', 'http-pub-2'], 'ev', {}, { info: 'subscription_count' }));
  assert.deepEqual(multi, {
    channels: { 'http-pub-1': { subscription_count: 2 }, 'http-pub-2': { subscription_count: 1 } },
  });

  const plain = await json(await sdk.trigger('http-pub-1', 'ev', {}));
  assert.deepEqual(plain, {});
});

test('batch trigger with info answers per event', { timeout: TEST_TIMEOUT }, async () => {
  await occupy();
  const body = await json(
    await ctx.sdk().triggerBatch([
      { channel: 'presence-http', name: 'e1', data: {}, info: 'user_count' },
      { channel: 'http-pub-2', name: 'e2', data: {} },
      { channel: 'http-pub-1', name: 'e3', data: {}, info: 'subscription_count' },
    ]),
  );
  assert.deepEqual(body, { batch: [{ user_count: 2 }, {}, { subscription_count: 2 }] });
});

test('request signed with a wrong secret -> 401 with a JSON body', { timeout: TEST_TIMEOUT }, async () => {
  const bad = ctx.sdk(APPS.main, { secret: 'wrong-secret' });
  const err = await expectRequestError(bad.trigger('http-x', 'ev', {}));
  assert.equal(err.status, 401);
  const body = JSON.parse(err.body);
  assert.equal(body.code, 401);
  assert.equal(typeof body.error, 'string');
  const err2 = await expectRequestError(bad.get({ path: '/channels' }));
  assert.equal(err2.status, 401);
});

test('request with another app key -> 401; unknown app id -> 404', { timeout: TEST_TIMEOUT }, async () => {
  // signed correctly with app-3's credentials, but sent to app-1
  const crossed = ctx.sdk({ ...APPS.noClientEvents, id: APPS.main.id });
  const e1 = await expectRequestError(crossed.get({ path: '/channels' }));
  assert.equal(e1.status, 401);

  const unknown = ctx.sdk({ id: 'no-such-app', key: 'app-key', secret: 'app-secret' });
  const e2 = await expectRequestError(unknown.get({ path: '/channels' }));
  assert.equal(e2.status, 404);
  assert.equal(JSON.parse(e2.body).code, 404);
});

test('event data over 10 240 bytes -> 413; exactly 10 240 bytes is accepted', { timeout: TEST_TIMEOUT }, async () => {
  const sdk = ctx.sdk();
  const c = await ctx.connectedClient();
  await c.subscribe('http-size');
  const exact = 'é'.repeat(5120); // 10 240 bytes of UTF-8, 5 120 characters
  const ok = await sdk.trigger('http-size', 'big', exact);
  assert.equal(ok.status, 200);
  const got = await c.waitEvent('http-size', 'big');
  assert.equal(got.data, exact);

  const err = await expectRequestError(sdk.trigger('http-size', 'too-big', 'x'.repeat(10241)));
  assert.equal(err.status, 413);
  assert.equal(JSON.parse(err.body).code, 413);
  const errBatch = await expectRequestError(
    sdk.triggerBatch([{ channel: 'http-size', name: 'too-big', data: 'x'.repeat(10241) }]),
  );
  assert.equal(errBatch.status, 413);

  await sdk.trigger('http-size', 'sentinel', {});
  await c.waitEvent('http-size', 'sentinel');
  assert.deepEqual(c.appFrames('http-size').map((f) => f.event), ['big', 'sentinel']);
});

test('hand-signed: stale timestamp, bad body_md5, non-string data, bad batch', { timeout: TEST_TIMEOUT }, async () => {
  const body = { name: 'ev', channels: ['http-x'], data: '{}' };
  const good = await ctx.signed({ method: 'POST', path: '/apps/app-1/events', body });
  assert.equal(good.status, 200);
  assert.deepEqual(good.json, {});

  const stale = await ctx.signed({
    method: 'POST',
    path: '/apps/app-1/events',
    body,
    timestamp: Math.floor(Date.now() / 1000) - 700,
  });
  assert.equal(stale.status, 401);

  const md5 = await ctx.signed({
    method: 'POST',
    path: '/apps/app-1/events',
    body,
    bodyMd5: '0'.repeat(32),
  });
  assert.equal(md5.status, 401);

  const objData = await ctx.signed({
    method: 'POST',
    path: '/apps/app-1/events',
    body: { name: 'ev', channels: ['http-x'], data: { not: 'a string' } },
  });
  assert.equal(objData.status, 400);
  assert.match(objData.contentType || '', /^application\/json/);
  assert.equal(objData.json.code, 400);

  const tooMany = await ctx.signed({
    method: 'POST',
    path: '/apps/app-1/batch_events',
    body: { batch: Array.from({ length: 11 }, (_, i) => ({ name: 'e', channel: `b${i}`, data: '{}' })) },
  });
  assert.equal(tooMany.status, 400);

  const single = await ctx.signed({
    method: 'POST',
    path: '/apps/app-1/events',
    body: { name: 'ev', channel: 'http-x', data: '{}' }, // PHP SDK style single `channel`
  });
  assert.equal(single.status, 200);
});

test('hand-signed: percent-encoded query values are verified decoded (PHP/Guzzle style)', { timeout: TEST_TIMEOUT }, async () => {
  await occupy();
  // signedRequest signs the decoded value and puts encodeURIComponent(value) on the wire: ',' -> %2C
  const res = await ctx.signed({
    method: 'GET',
    path: '/apps/app-1/channels/presence-http',
    query: { info: 'user_count,subscription_count' },
  });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { occupied: true, user_count: 2, subscription_count: 3 });
});

test('unknown route -> 404', { timeout: TEST_TIMEOUT }, async () => {
  const res = await ctx.signed({ method: 'GET', path: '/apps/app-1/no-such-endpoint' });
  assert.equal(res.status, 404);
});

test('disabled app -> 403', { timeout: TEST_TIMEOUT }, async () => {
  const err = await expectRequestError(ctx.sdk(APPS.disabled).trigger('x', 'ev', {}));
  assert.equal(err.status, 403);
});

test('hand-signed: validation errors -> 400', { timeout: TEST_TIMEOUT }, async () => {
  const post = (body) => ctx.signed({ method: 'POST', path: '/apps/app-1/events', body });
  const cases = {
    'more than 100 channels': { name: 'ev', channels: Array.from({ length: 101 }, (_, i) => `c${i}`), data: '{}' },
    'event name over 200 chars': { name: 'e'.repeat(201), channels: ['ok'], data: '{}' },
    'invalid socket_id': { name: 'ev', channels: ['ok'], data: '{}', socket_id: '1.1:private-other' },
    'invalid channel name': { name: 'ev', channels: ['bad channel'], data: '{}' },
    'missing name': { channels: ['ok'], data: '{}' },
    'malformed JSON': '{"name":',
  };
  for (const [what, body] of Object.entries(cases)) {
    const res = await post(body);
    assert.equal(res.status, 400, `${what}: got ${res.status} ${res.text}`);
  }
  const okName = await post({ name: 'e'.repeat(200), channels: Array.from({ length: 100 }, (_, i) => `c${i}`), data: '{}' });
  assert.equal(okName.status, 200, 'exactly 100 channels and a 200-char name are fine');
});
