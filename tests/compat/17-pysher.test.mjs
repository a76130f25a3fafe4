// pysher (PyPI; pinned with its dependencies in python/requirements.txt), a Python WebSocket client
// nobody here wrote, against Herald: public, private (signed by pysher from the secret; a wrong
// secret refused) and presence subscriptions, events from the Python server SDK, client events
// between two pysher clients. The assertions live in python/test_pysher.py (plain unittest); this
// file prepares the venv, starts herald(s) through the harness (in cluster mode the clients and the
// SDK use different nodes) and runs it.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER, WAIT_MS, useHerald } from './harness.mjs';
import { ensureVenv, runUnittest } from './python/venv.mjs';

/** The Python SDK only accepts numeric app ids: this file adds its own app. */
const PY_APP = { id: '4343', key: 'pysher-key', secret: 'pysher-secret' };

const ctx = useHerald({
  topLevel: `
[[apps]]
id = "${PY_APP.id}"
key = "${PY_APP.key}"
secret = "${PY_APP.secret}"
client_events = true`,
});

before(() => ensureVenv(), { timeout: 600000 });

test('pysher: python/test_pysher.py passes against Herald', { timeout: 120000 }, async (t) => {
  const { code, out } = await runUnittest(t, 'test_pysher', {
    HERALD_HOST: '127.0.0.1',
    HERALD_PORTS: ctx.ports.join(','),
    HERALD_APP_ID: PY_APP.id,
    HERALD_APP_KEY: PY_APP.key,
    HERALD_APP_SECRET: PY_APP.secret,
    HERALD_WAIT_MS: String(WAIT_MS),
    HERALD_CLUSTER: String(CLUSTER),
  });
  assert.equal(code, 0, `python -m unittest test_pysher failed:\n${out}`);
  assert.match(out, /\nOK/);
});
