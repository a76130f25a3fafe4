// The Python `pusher` SDK (PyPI, pinned with its dependencies in python/requirements.txt) against
// Herald. The assertions live in python/test_sdk.py (plain unittest); this file
//   1. creates or reuses the venv tests/compat/.venv (`python3 -m venv`, then `pip install -r`,
//      skipped when the installed requirements file is unchanged),
//   2. starts a loopback "fixture" HTTP server: it receives Herald's webhooks and lets the Python
//      tests drive real pusher-js clients (connect, subscribe/sign in with auth that *Python*
//      produced, wait for events and states),
//   3. starts herald(s) through the harness, with a webhook endpoint on the fixture,
//   4. runs `python -m unittest` with the host, ports, app credentials and fixture URL in the
//      environment, and fails with its output if any Python test fails.
//
// Fixture endpoints (POST, JSON in and out; 500 {error} on failure, waits have deadlines):
//   /connect {}                          → {id, socket_id}
//   /subscribe {id, channel, auth?}      → {ok, data}  (auth = what Python's authenticate returned)
//   /signin {id, auth}                   → {ok, data}  (auth = Python's authenticate_user output)
//   /wait_event {id, channel, event}     → the frame {event, channel, data, user_id}
//   /events {id, channel}                → app frames received so far on that channel
//   /wait_state {id, state}              → {states, close_codes}
//   /wait_webhook {channel, name}        → {headers, body} of a webhook request with that event
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { CLUSTER, Recorder, WAIT_MS, useHerald } from './harness.mjs';
import { ensureVenv, runUnittest } from './python/venv.mjs';

const HOOK_PREFIX = 'py-hook-';
/**
 * The Python SDK only accepts numeric app ids (`app_id_re = \A[0-9]+\Z`, ValueError otherwise),
 * so the harness' app-1 cannot be used: this file adds its own app (listed first in the config).
 */
const PY_APP = { id: '4242', key: 'py-key', secret: 'py-secret' };

// ---------------------------------------------------------------------------------------------
// venv

// ---------------------------------------------------------------------------------------------
// fixture server (webhook receiver + pusher-js remote control); listening before useHerald

const hooks = new Recorder('webhooks'); // { headers, body, events }
const clients = new Map(); // id -> { client, auths: Map(channel -> auth), userAuth }
let ctx; // set below, after the fixture's port is known

const handlers = {
  async connect() {
    const entry = { auths: new Map(), userAuth: null };
    entry.client = ctx.client({
      app: PY_APP,
      options: {
        channelAuthorization: {
          customHandler: ({ channelName }, cb) => {
            const a = entry.auths.get(channelName);
            if (a) cb(null, a);
            else cb(new Error(`fixture: no auth given for ${channelName}`), null);
          },
        },
        userAuthentication: {
          customHandler: (_, cb) => (entry.userAuth ? cb(null, entry.userAuth) : cb(new Error('fixture: no user auth'), null)),
        },
      },
    });
    const id = String(clients.size + 1);
    clients.set(id, entry);
    return { id, socket_id: await entry.client.connected() };
  },
  async subscribe({ id, channel, auth }) {
    const e = get(id);
    if (auth) e.auths.set(channel, auth);
    const { result } = e.client.subscribeRaw(channel);
    const first = await result.nth(1, `subscription result for ${channel}`);
    return { ok: first.event === 'pusher:subscription_succeeded', data: first.data ?? null };
  },
  async signin({ id, auth }) {
    const e = get(id);
    e.userAuth = auth;
    try {
      return { ok: true, data: await e.client.signin() };
    } catch (err) {
      return { ok: false, data: String(err.message) };
    }
  },
  async wait_event({ id, channel, event }) {
    return frameJson(await get(id).client.waitEvent(channel, event));
  },
  async events({ id, channel }) {
    return get(id).client.appFrames(channel).map(frameJson);
  },
  async wait_state({ id, state }) {
    const c = get(id).client;
    await c.states.until((s) => s[s.length - 1] === state, `${c.label} ${state}`);
    return {
      states: c.states.items,
      close_codes: c.errors.items.filter((e) => e.type === 'WebSocketError').map((e) => e.error?.data?.code),
    };
  },
  async wait_webhook({ channel, name }) {
    const h = await hooks.until(
      (items) => items.find((r) => r.events.some((e) => e.channel === channel && e.name === name)),
      `webhook ${name} for ${channel}`,
    );
    return { headers: h.headers, body: h.body };
  },
};

function get(id) {
  const e = clients.get(String(id));
  if (!e) throw new Error(`fixture: no client ${id}`);
  return e;
}

function frameJson(f) {
  return { event: f.event, channel: f.channel, data: f.data ?? null, user_id: f.user_id ?? null };
}

const fixture = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const reply = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (req.url === '/webhook') {
      let events = [];
      try {
        events = JSON.parse(raw).events || [];
      } catch {}
      hooks.push({ headers: req.headers, body: raw, events });
      reply(200, {});
      return;
    }
    const h = handlers[req.url.slice(1)];
    if (req.method !== 'POST' || !h) return reply(404, { error: `no fixture endpoint ${req.method} ${req.url}` });
    try {
      reply(200, await h(raw ? JSON.parse(raw) : {}));
    } catch (e) {
      reply(500, { error: String((e && e.stack) || e) });
    }
  });
});
await new Promise((resolve) => fixture.listen(0, '127.0.0.1', resolve));
fixture.unref();
const FIXTURE_URL = `http://127.0.0.1:${fixture.address().port}`;

// topLevel lines precede the harness' [[apps]] tables, so this app (and its webhook sub-table)
// is simply the first entry of the apps array.
ctx = useHerald({
  topLevel: `webhook_batch_ms = 50

[[apps]]
id = "${PY_APP.id}"
key = "${PY_APP.key}"
secret = "${PY_APP.secret}"
client_events = true
user_authentication = true
subscription_count = true

[[apps.webhooks]]
url = "${FIXTURE_URL}/webhook"
event_types = ["channel_occupied", "channel_vacated"]
filter = { prefix = "${HOOK_PREFIX}" }`,
});

// venv creation / pip install may take a while the first time (not counted against a test)
before(() => ensureVenv(), { timeout: 600000 });

test('Python pusher SDK: python/test_sdk.py passes against Herald', { timeout: 120000 }, async (t) => {
  const { code, out } = await runUnittest(t, 'test_sdk', {
    HERALD_HOST: '127.0.0.1',
    HERALD_PORTS: ctx.ports.join(','),
    HERALD_APP_ID: PY_APP.id,
    HERALD_APP_KEY: PY_APP.key,
    HERALD_APP_SECRET: PY_APP.secret,
    HERALD_FIXTURE_URL: FIXTURE_URL,
    HERALD_HOOK_PREFIX: HOOK_PREFIX,
    HERALD_WAIT_MS: String(WAIT_MS),
    HERALD_CLUSTER: String(CLUSTER),
  });
  assert.equal(code, 0, `python -m unittest test_sdk failed:\n${out}`);
  assert.match(out, /\nOK/);
});
