// PROTOCOL.md §7: webhooks, received by a consumer written against the `pusher` SDK's webhook
// helper (sdk.webhook({ headers, rawBody }).isValid() / getEvents() / getTime()).
//
// A loopback HTTP receiver is started before the server(s), so its URL can go into the config:
//   /app-1          every event kind of app-1, with a custom header
//   /app-1/members  app-1, only member_added/member_removed on channels starting "presence-wh-"
//                   (a filtered endpoint: Herald must re-serialize and re-sign the smaller body)
//   /app-3          every event kind of app-3 (another key and secret)
// Every request is validated on arrival; waits re-check on each request and fail fast on the first
// invalid one. Each test uses its own channel names, so late webhooks of an earlier test (the
// debounced vacated of its clients, disconnected after it) never match a later test.
//
// Negative checks ("X was not sent", "Y was sent once") end with markers: a fresh channel per
// node whose channel_occupied must arrive, or, when X would be a debounced webhook, a channel
// that is subscribed and left after X's debounce started, whose own debounced channel_vacated
// must arrive. A second round of plain markers follows because in cluster mode any node's
// dispatcher may deliver an entry, so order across batches is not strict.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { APPS, PusherSDK, Recorder, TEST_TIMEOUT, WAIT_MS, pollUntil, useHerald } from './harness.mjs';

const BATCH_MS = 50;
const DEBOUNCE_MS = 300;
const RETRY_FIRST_MS = 100;
const MEMBERS_PREFIX = 'presence-wh-';

/** What an app's webhook consumer holds: its own key and secret only (no host, no requests). */
function consumerSdk(app) {
  return new PusherSDK({ appId: app.id, key: app.key, secret: app.secret });
}

const CONSUMERS = {
  '/app-1': consumerSdk(APPS.main),
  '/app-1/members': consumerSdk(APPS.main),
  '/app-3': consumerSdk(APPS.noClientEvents),
};

// ---------------------------------------------------------------------------------------------
// The receiver

/** Every request: { seq, path, method, headers, rawBody, receivedAt, valid, events, time, status }. */
const requests = new Recorder('webhook requests');
/** Channels whose first webhook request the receiver answers with 500 (then 200). */
const failOnce = new Set();
/** Human-readable reasons a request was not what a consumer accepts; fails every wait. */
const problems = [];

function checkRequest(r) {
  const why = [];
  if (r.method !== 'POST') why.push(`method ${r.method}`);
  if (!CONSUMERS[r.path]) why.push(`unexpected path ${r.path}`);
  if (r.headers['content-type'] !== 'application/json') {
    why.push(`content-type ${JSON.stringify(r.headers['content-type'])} is not exactly application/json`);
  }
  if (!r.valid) why.push('sdk.webhook(...).isValid() is false');
  if (r.valid) {
    if (!Array.isArray(r.events) || r.events.length === 0) why.push('no events');
    const t = r.time.getTime();
    if (!Number.isInteger(t) || t > r.receivedAt + 5 || t < r.receivedAt - 10000) {
      why.push(`time_ms ${t} not within 10 s before arrival at ${r.receivedAt}`);
    }
  }
  if (r.path === '/app-1' && r.headers['x-compat-test'] !== 'herald') why.push('custom header X-Compat-Test missing');
  if (r.path === '/app-1/members' && r.valid) {
    for (const e of r.events) {
      if (!['member_added', 'member_removed'].includes(e.name) || !e.channel.startsWith(MEMBERS_PREFIX)) {
        why.push(`filtered endpoint got ${JSON.stringify(e)}`);
      }
    }
  }
  for (const e of r.events || []) {
    if (typeof e.channel === 'string' && e.channel.startsWith('#')) why.push(`webhook for ${e.channel}`);
  }
  return why;
}

let seq = 0;
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const r = {
      seq: ++seq,
      path: req.url,
      method: req.method,
      headers: req.headers,
      rawBody,
      receivedAt: Date.now(),
      valid: false,
      events: null,
      time: null,
      status: 200,
    };
    const consumer = CONSUMERS[req.url];
    if (consumer) {
      const wh = consumer.webhook({ headers: req.headers, rawBody });
      r.valid = wh.isValid();
      if (r.valid) {
        r.events = wh.getEvents();
        r.time = wh.getTime();
      }
    }
    for (const why of checkRequest(r)) problems.push(`request #${r.seq} to ${r.path}: ${why}; body ${rawBody}`);
    const failing = (r.events || []).find((e) => failOnce.has(e.channel));
    if (failing) {
      failOnce.delete(failing.channel);
      r.status = 500;
    }
    res.writeHead(r.status, { 'content-type': 'text/plain' });
    res.end(r.status === 200 ? 'ok' : 'try again');
    requests.push(r);
  });
});
await new Promise((resolve, reject) => {
  receiver.once('error', reject);
  receiver.listen(0, '127.0.0.1', resolve);
});
const BASE = `http://127.0.0.1:${receiver.address().port}`;
after(async () => {
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

const ctx = useHerald({
  topLevel: [
    `webhook_batch_ms = ${BATCH_MS}`,
    `webhook_debounce_ms = ${DEBOUNCE_MS}`,
    `webhook_retry_first_ms = ${RETRY_FIRST_MS}`,
  ].join('\n'),
  appTables: {
    'app-1': `
[[apps.webhooks]]
url = "${BASE}/app-1"
headers = { "X-Compat-Test" = "herald" }

[[apps.webhooks]]
url = "${BASE}/app-1/members"
event_types = ["member_added", "member_removed"]
filter = { prefix = "${MEMBERS_PREFIX}" }
`,
    'app-3': `
[[apps.webhooks]]
url = "${BASE}/app-3"
`,
  },
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Every event received on `path` so far and accepted (200), each as { event, req }. */
function received(path = '/app-1') {
  return requests.items
    .filter((r) => r.path === path && r.valid && r.status === 200)
    .flatMap((r) => r.events.map((event) => ({ event, req: r })));
}

/** Events on `channel` (optionally of kind `name`) received on `path`, each as { event, req }. */
function on(channel, name, path = '/app-1') {
  return received(path).filter(({ event }) => event.channel === channel && (!name || event.name === name));
}

/** Waits until `fn()` is truthy (re-checked on every request); fails fast on an invalid request. */
function waitFor(label, fn, ms = WAIT_MS) {
  return requests.until(
    () => {
      if (problems.length) throw new Error(`invalid webhook request(s):\n${problems.join('\n')}`);
      return fn();
    },
    label,
    ms,
  );
}

/** Waits for the first `name` event on `channel`; returns { event, req }. */
function waitHook(channel, name, path = '/app-1', ms = WAIT_MS) {
  return waitFor(`${name} for ${channel} on ${path}`, () => on(channel, name, path)[0], ms);
}

/** The events on `channel` as [name, user_id?] pairs, without subscription_count. */
function kinds(channel, path = '/app-1') {
  return on(channel, null, path)
    .filter(({ event }) => event.name !== 'subscription_count')
    .map(({ event }) => (event.user_id === undefined ? [event.name] : [event.name, event.user_id]));
}

let markerSeq = 0;

/**
 * A marker on `node`: a fresh channel's channel_occupied must arrive. With `debounced`, the channel
 * is then left again and its channel_vacated (decided a debounce after now) must arrive too.
 */
async function marker(node, { debounced = false, app = APPS.main } = {}) {
  const name = `wh-marker-${++markerSeq}`;
  const c = await ctx.connectedClient({ node, app });
  await c.subscribe(name);
  await waitHook(name, 'channel_occupied', app === APPS.main ? '/app-1' : '/app-3');
  if (debounced) {
    c.pusher.unsubscribe(name);
    await waitHook(name, 'channel_vacated', app === APPS.main ? '/app-1' : '/app-3');
  }
}

/**
 * Everything that happened on any node before this call (debounced webhooks whose debounce
 * started before it, with `debounced`) has been delivered when this resolves.
 */
async function settle({ debounced = false } = {}) {
  const nodes = ctx.servers.map((_, i) => i);
  await Promise.all(nodes.map((i) => marker(i, { debounced })));
  await Promise.all(nodes.map((i) => marker(i)));
}

// ---------------------------------------------------------------------------------------------
// Tests

test('public channel: channel_occupied on the first subscribe, channel_vacated a debounce after the last leave, once each', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'wh-public';
  // in cluster mode one client per node
  const clients = [];
  for (let i = 0; i < 3; i++) clients.push(await ctx.connectedClient());
  await clients[0].subscribe(CH);
  const occupied = await waitHook(CH, 'channel_occupied');
  assert.deepEqual(occupied.event, { name: 'channel_occupied', channel: CH });
  assert.equal(occupied.req.headers['x-pusher-key'], APPS.main.key);
  assert.match(occupied.req.headers['x-pusher-signature'], /^[0-9a-f]{64}$/);
  await clients[1].subscribe(CH);
  await clients[2].subscribe(CH);

  clients[0].pusher.unsubscribe(CH);
  clients[1].pusher.unsubscribe(CH);
  const lastLeave = Date.now();
  clients[2].pusher.unsubscribe(CH);
  const vacated = await waitHook(CH, 'channel_vacated');
  assert.deepEqual(vacated.event, { name: 'channel_vacated', channel: CH });
  const waited = vacated.req.receivedAt - lastLeave;
  assert.ok(waited >= DEBOUNCE_MS - 10, `channel_vacated came ${waited} ms after the last leave, debounce is ${DEBOUNCE_MS} ms`);

  await settle({ debounced: true });
  assert.deepEqual(kinds(CH), [['channel_occupied'], ['channel_vacated']]);
  assert.deepEqual(on(CH, null, '/app-1/members'), [], 'filtered endpoint: no public-channel events');
});

test('presence: member_added / member_removed with the user_id, once per user across connections and nodes', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-wh-members';
  const alice1 = await ctx.connectedClient({ presence: { user_id: 'alice', user_info: { n: 1 } } });
  const bob = await ctx.connectedClient({ presence: { user_id: 'bob' } });
  const alice2 = await ctx.connectedClient({ presence: { user_id: 'alice', user_info: { n: 2 } } });

  await alice1.subscribe(CH);
  const added = await waitHook(CH, 'member_added');
  assert.deepEqual(added.event, { name: 'member_added', channel: CH, user_id: 'alice' });
  assert.deepEqual((await waitHook(CH, 'channel_occupied')).event, { name: 'channel_occupied', channel: CH });
  await bob.subscribe(CH);
  await waitFor('member_added bob', () => on(CH, 'member_added').find((h) => h.event.user_id === 'bob'));
  await alice2.subscribe(CH); // alice's second connection: no transition

  alice2.pusher.unsubscribe(CH); // alice is still there through alice1: no member_removed
  bob.pusher.unsubscribe(CH);
  const bobGone = await waitFor('member_removed bob', () => on(CH, 'member_removed').find((h) => h.event.user_id === 'bob'));
  assert.deepEqual(bobGone.event, { name: 'member_removed', channel: CH, user_id: 'bob' });

  const aliceLeft = Date.now();
  alice1.pusher.unsubscribe(CH);
  const aliceGone = await waitFor('member_removed alice', () => on(CH, 'member_removed').find((h) => h.event.user_id === 'alice'));
  assert.deepEqual(aliceGone.event, { name: 'member_removed', channel: CH, user_id: 'alice' });
  assert.ok(
    aliceGone.req.receivedAt - aliceLeft >= DEBOUNCE_MS - 10,
    'member_removed alice only after her last connection left (plus the debounce)',
  );
  await waitHook(CH, 'channel_vacated');

  await settle({ debounced: true });
  const events = kinds(CH);
  const count = (...pair) => events.filter((e) => e.join() === pair.join()).length;
  assert.equal(count('channel_occupied'), 1, `channel_occupied once: ${JSON.stringify(events)}`);
  assert.equal(count('member_added', 'alice'), 1, `member_added alice once: ${JSON.stringify(events)}`);
  assert.equal(count('member_added', 'bob'), 1, `member_added bob once: ${JSON.stringify(events)}`);
  assert.equal(count('member_removed', 'bob'), 1, `member_removed bob once: ${JSON.stringify(events)}`);
  assert.equal(count('member_removed', 'alice'), 1, `member_removed alice once: ${JSON.stringify(events)}`);
  assert.equal(count('channel_vacated'), 1, `channel_vacated once: ${JSON.stringify(events)}`);
  assert.equal(events.length, 6, JSON.stringify(events));
  assert.deepEqual(on(CH, 'subscription_count'), [], 'no subscription_count on presence channels');

  // the filtered endpoint got exactly the member events, in a body signed for what it holds
  const members = on(CH, null, '/app-1/members').map(({ event }) => [event.name, event.user_id]);
  assert.deepEqual(
    members.map((m) => m.join()).sort(),
    ['member_added,alice', 'member_added,bob', 'member_removed,alice', 'member_removed,bob'],
  );
});

test('re-join within the debounce (same socket): neither vacated/member_removed nor occupied/member_added again', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-wh-rejoin';
  const a = await ctx.connectedClient({ presence: { user_id: 'carol' } });
  await a.subscribe(CH);
  await waitHook(CH, 'member_added');
  await waitHook(CH, 'channel_occupied');

  const sdk = ctx.sdk();
  const left = Date.now();
  a.pusher.unsubscribe(CH);
  // re-join only once the channel is empty cluster-wide: the vacancy and carol's removal are
  // then pending (an unsubscribe and subscribe back to back could be handled before either)
  await pollUntil(
    async () => {
      const body = await (await sdk.get({ path: `/channels/${CH}` })).json();
      return { ok: body.occupied === false, value: body };
    },
    `${CH} empty`,
    DEBOUNCE_MS,
    10,
  );
  await a.subscribe(CH);
  const back = Date.now() - left;
  assert.ok(back < DEBOUNCE_MS, `re-joined after ${back} ms, within the ${DEBOUNCE_MS} ms debounce`);

  // markers on a's node first: their debounce starts after carol's
  await marker(a.node, { debounced: true });
  await settle({ debounced: true });
  assert.deepEqual(
    kinds(CH).map((k) => k.join()).sort(),
    ['channel_occupied', 'member_added,carol'],
  );
});

test('re-join within the debounce from another connection (page reload, other node in cluster mode): no member_removed, no second member_added', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'presence-wh-reload';
  const watcher = await ctx.connectedClient({ presence: { user_id: 'watcher' } });
  const before = await ctx.connectedClient({ presence: { user_id: 'dave' } });
  const reloaded = await ctx.connectedClient({ presence: { user_id: 'dave' } });
  const { channel: watch } = await watcher.subscribe(CH);
  const removed = watcher.on(watch, 'pusher:member_removed');
  await before.subscribe(CH);
  await waitFor('member_added dave', () => on(CH, 'member_added').find((h) => h.event.user_id === 'dave'));

  const left = Date.now();
  before.disconnect();
  // the watcher sees dave leave right away: his removal is now pending
  await removed.nth(1, 'pusher:member_removed dave');
  await reloaded.subscribe(CH);
  const back = Date.now() - left;
  assert.ok(back < DEBOUNCE_MS, `dave re-joined after ${back} ms, within the ${DEBOUNCE_MS} ms debounce`);

  await marker(before.node, { debounced: true });
  await settle({ debounced: true });
  assert.deepEqual(
    kinds(CH).map((k) => k.join()).sort(),
    ['channel_occupied', 'member_added,dave', 'member_added,watcher'],
  );
});

test('client_event: data as a string of the client JSON, socket_id of the sender; user_id on presence', { timeout: TEST_TIMEOUT }, async () => {
  const PRIV = 'private-wh-chat';
  const PRES = 'presence-wh-chat';
  const a = await ctx.connectedClient({ presence: { user_id: 'erin' } });
  const b = await ctx.connectedClient({ presence: { user_id: 'frank' } });
  const { channel: privA } = await a.subscribe(PRIV);
  await b.subscribe(PRIV);
  const { channel: presA } = await a.subscribe(PRES);
  await b.subscribe(PRES);

  const data = { text: 'hi', n: 1, nested: { list: [1, 'two', null] } };
  assert.equal(privA.trigger('client-typing', data), true);
  const priv = await waitHook(PRIV, 'client_event');
  assert.deepEqual(priv.event, {
    name: 'client_event',
    channel: PRIV,
    event: 'client-typing',
    data: JSON.stringify(data),
    socket_id: a.socketId,
  });
  assert.equal(typeof priv.event.data, 'string');
  await b.waitEvent(PRIV, 'client-typing');

  presA.trigger('client-moved', { x: 3 });
  const pres = await waitHook(PRES, 'client_event');
  assert.deepEqual(pres.event, {
    name: 'client_event',
    channel: PRES,
    event: 'client-moved',
    data: '{"x":3}',
    socket_id: a.socketId,
    user_id: 'erin',
  });
  // client events are not member events: the filtered endpoint does not take them
  await settle();
  assert.equal(on(PRIV, 'client_event').length, 1);
  assert.equal(on(PRES, 'client_event').length, 1);
  assert.deepEqual(on(PRES, 'client_event', '/app-1/members'), []);
});

test('cache_miss: once when two clients subscribe an empty cache channel', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'cache-wh-empty';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  const { channel: chA } = a.subscribeRaw(CH);
  const missA = a.on(chA, 'pusher:cache_miss');
  await missA.nth(1, 'pusher:cache_miss on a');
  const miss = await waitHook(CH, 'cache_miss');
  assert.deepEqual(miss.event, { name: 'cache_miss', channel: CH });
  const { channel: chB } = b.subscribeRaw(CH);
  const missB = b.on(chB, 'pusher:cache_miss');
  await missB.nth(1, 'pusher:cache_miss on b');

  await marker(b.node);
  await settle();
  assert.equal(on(CH, 'cache_miss').length, 1, JSON.stringify(kinds(CH)));
  assert.equal(on(CH, 'channel_occupied').length, 1);
});

test('subscription_count: the count of a public channel as it changes (app-1 has the flag)', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'wh-counted';
  const a = await ctx.connectedClient();
  const b = await ctx.connectedClient();
  await a.subscribe(CH);
  const first = await waitHook(CH, 'subscription_count');
  assert.deepEqual(first.event, { name: 'subscription_count', channel: CH, subscription_count: 1 });
  await b.subscribe(CH);
  const second = await waitFor('subscription_count 2', () =>
    on(CH, 'subscription_count').find((h) => h.event.subscription_count === 2),
  );
  assert.deepEqual(second.event, { name: 'subscription_count', channel: CH, subscription_count: 2 });
  assert.deepEqual(
    on(CH, 'subscription_count').map((h) => h.event.subscription_count),
    [1, 2],
  );
});

test('#server-to-user- channels produce no webhooks (sign-in, sendToUser, disconnect)', { timeout: TEST_TIMEOUT }, async () => {
  const USER = 'wh-user';
  const u = await ctx.connectedClient({ user: { id: USER } });
  await u.signin();
  await u.waitFrame(
    (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === `#server-to-user-${USER}`,
    'server-to-user subscription',
  );
  const got = u.on(u.pusher.user, 'hello');
  await ctx.sdk().sendToUser(USER, 'hello', { x: 1 });
  await got.nth(1, 'sendToUser event');
  u.disconnect();

  await marker(u.node, { debounced: true });
  await settle({ debounced: true });
  const leaked = requests.items.flatMap((r) => (r.events || []).filter((e) => String(e.channel).startsWith('#')));
  assert.deepEqual(leaked, []);
});

test('another app: its own key and secret sign its webhooks; app-1 consumer rejects them', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'wh-app3';
  const c = await ctx.connectedClient({ app: APPS.noClientEvents });
  await c.subscribe(CH);
  const hook = await waitHook(CH, 'channel_occupied', '/app-3');
  assert.deepEqual(hook.event, { name: 'channel_occupied', channel: CH });
  const req = { headers: hook.req.headers, rawBody: hook.req.rawBody };
  assert.equal(req.headers['x-pusher-key'], APPS.noClientEvents.key);
  assert.equal(consumerSdk(APPS.noClientEvents).webhook(req).isValid(), true);
  assert.equal(consumerSdk(APPS.main).webhook(req).isValid(), false, 'app-1 consumer: other key');
  // the SDK accepts further tokens: with app-3's it is valid again
  assert.equal(consumerSdk(APPS.main).webhook(req).isValid({ key: APPS.noClientEvents.key, secret: APPS.noClientEvents.secret }), true);
  // a consumer that has app-3's key but another secret
  assert.equal(consumerSdk({ ...APPS.noClientEvents, secret: APPS.main.secret }).webhook(req).isValid(), false);

  await marker(c.node);
  await settle();
  assert.deepEqual(on(CH), [], 'app-1 endpoint gets nothing of app-3');
  assert.equal(on(CH, null, '/app-3').length, 1);
});

test('a request answered with 500 is retried with the same signed body', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'wh-retry';
  failOnce.add(CH);
  const c = await ctx.connectedClient({ app: APPS.noClientEvents });
  await c.subscribe(CH);
  const carrying = () => requests.items.filter((r) => r.path === '/app-3' && (r.events || []).some((e) => e.channel === CH));
  const [failed, retried] = await waitFor('a failed and a retried delivery', () => carrying().length >= 2 && carrying());
  assert.equal(failed.status, 500);
  assert.equal(retried.status, 200);
  assert.equal(retried.rawBody, failed.rawBody, 'the same bytes (and time_ms) again');
  assert.equal(retried.headers['x-pusher-signature'], failed.headers['x-pusher-signature']);
  const gap = retried.receivedAt - failed.receivedAt;
  assert.ok(gap >= RETRY_FIRST_MS - 10, `retried ${gap} ms later, first back-off ${RETRY_FIRST_MS} ms`);

  // a third attempt would come 2 * RETRY_FIRST_MS after the second; the debounced marker takes longer
  await marker(c.node, { app: APPS.noClientEvents, debounced: true });
  assert.equal(carrying().length, 2, 'not sent again after the 200');
  assert.deepEqual(on(CH, null, '/app-3').map(({ event }) => event), [{ name: 'channel_occupied', channel: CH }]);
});

test('a consumer rejects a body whose bytes were altered, a wrong signature, a wrong content type', { timeout: TEST_TIMEOUT }, async () => {
  const CH = 'wh-tamper';
  const c = await ctx.connectedClient();
  await c.subscribe(CH);
  const { req } = await waitHook(CH, 'channel_occupied');
  const sdk = consumerSdk(APPS.main);
  const original = { headers: req.headers, rawBody: req.rawBody };
  assert.equal(sdk.webhook(original).isValid(), true, 'the recorded request validates again');
  assert.equal(sdk.webhook(original).getTime().getTime(), JSON.parse(req.rawBody).time_ms);

  // one byte of the channel name changed: still JSON, but not the signed bytes
  const altered = req.rawBody.replace(CH, 'wh-tampex');
  assert.notEqual(altered, req.rawBody);
  const alteredHook = sdk.webhook({ headers: req.headers, rawBody: altered });
  assert.equal(alteredHook.isBodyValid(), true, 'the altered body still parses');
  assert.equal(alteredHook.isValid(), false);
  // whitespace added: same JSON value, other bytes
  assert.equal(sdk.webhook({ headers: req.headers, rawBody: `${req.rawBody} ` }).isValid(), false);

  const sig = req.headers['x-pusher-signature'];
  const flipped = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
  assert.equal(sdk.webhook({ headers: { ...req.headers, 'x-pusher-signature': flipped }, rawBody: req.rawBody }).isValid(), false);
  assert.equal(consumerSdk({ ...APPS.main, secret: 'not-the-secret' }).webhook(original).isValid(), false);
  assert.equal(
    sdk.webhook({ headers: { ...req.headers, 'content-type': 'application/json; charset=utf-8' }, rawBody: req.rawBody }).isValid(),
    false,
    'the SDK compares the whole content type',
  );
});

test('every webhook request of this file was valid, POST, exactly application/json, with events', { timeout: TEST_TIMEOUT }, async () => {
  await settle();
  assert.deepEqual(problems, []);
  assert.ok(requests.items.length > 0);
  const sizes = requests.items.map((r) => r.events.length);
  assert.ok(Math.max(...sizes) <= 20, `batches of at most 20 events, got ${Math.max(...sizes)}`);
});
