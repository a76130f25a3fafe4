// The debug console (GET /console on the admin listener) driven in headless Chromium through
// playwright-core: sign in with the admin token (console_token), live counts and the channel table
// (polled every 2 s), the live log (an SSE stream read with fetch()), a presence channel's members,
// the "Send test event" form reaching a real pusher-js client, and 401s for wrong credentials.
//
// Needs the system Chromium at /usr/bin/chromium (Debian: apt-get install chromium); playwright-core
// never downloads a browser. Run with `npm run test:console`. A full-page screenshot of the console
// is written to tests/compat/artifacts/console.png (and console-failure.png when the main test fails).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { APPS, CLUSTER, LB, useHerald } from '../harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(HERE, '../artifacts');
const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'test-console-token';
/** Deadline of every wait on the page (the page polls state every 2 s). */
const UI_MS = 10000;
const TEST_MS = 50000;

// Registered before useHerald, so a missing browser is the first error every test reports.
let browser = null;
before(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error('Chromium is missing: apt-get install chromium');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

const ctx = useHerald({ topLevel: `console_token = "${TOKEN}"` });

after(async () => {
  if (browser) await browser.close();
  browser = null;
});

/** The admin listener (same port as /metrics) of node 0. */
const adminBase = () => `http://127.0.0.1:${ctx.server.metricsPort}`;

// ---------------------------------------------------------------------------------------------
// Page helpers

/** A fresh browser context and page on /console; `problems` collects uncaught page errors. */
async function openConsole() {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(UI_MS);
  page.setDefaultNavigationTimeout(UI_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught page error: ${e.message}`));
  page.on('console', (m) => {
    // Chromium logs every non-2xx fetch as "Failed to load resource"; the 401/400 ones are expected.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  const res = await page.goto(`${adminBase()}/console`, { waitUntil: 'load' });
  assert.ok(res, 'no response for GET /console');
  assert.equal(res.status(), 200, `GET /console answered ${res.status()}`);
  assert.match(res.headers()['content-type'] || '', /^text\/html/, 'GET /console content-type');
  return { context, page, problems };
}

/** What the page shows, for failure messages. */
function pageSummary(page) {
  return page
    .evaluate(() => {
      const t = (sel) => {
        const e = document.querySelector(sel);
        return e ? `${e.hidden ? '(hidden) ' : ''}${e.textContent.trim()}` : '(missing)';
      };
      return {
        signinError: t('#signin-error'),
        app: document.querySelector('#app-select') ? document.querySelector('#app-select').value : '(missing)',
        stateStatus: t('#state-status'),
        logStatus: t('#log-status'),
        stats: ['connections', 'node-connections', 'nodes', 'channels'].map((s) => `${s}=${t(`#stat-${s}`)}`).join(' '),
        channels: [...document.querySelectorAll('#channels tbody tr')].map((r) => r.textContent.trim()),
        members: t('#members'),
        sendResult: t('#send-result'),
        log: [...document.querySelectorAll('#log .row')].slice(0, 20).map((r) => `[${r.dataset.type}] ${r.textContent}`),
      };
    })
    .then((s) => JSON.stringify(s, null, 1))
    .catch((e) => `(page unavailable: ${e.message})`);
}

/**
 * Waits until `fn(arg)` is truthy in the page (polled every 100 ms, at most `ms`), returns its value;
 * a timeout fails with `label` and what the page shows.
 */
async function waitPage(page, label, fn, arg, ms = UI_MS) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
    return await handle.jsonValue();
  } catch (e) {
    if (!/timeout/i.test(String(e && e.message))) throw e;
    throw new Error(`timed out after ${ms} ms waiting for ${label}; the page shows: ${await pageSummary(page)}`);
  }
}

/** Waits for a log row of `type` whose text contains every string of `parts`; returns its text. */
function waitLogRow(page, label, type, parts) {
  return waitPage(
    page,
    `log row ${label}`,
    ({ type, parts }) => {
      for (const row of document.querySelectorAll('#log .row')) {
        if (row.dataset.type === type && !row.hidden && parts.every((p) => row.textContent.includes(p))) {
          return row.textContent;
        }
      }
      return false;
    },
    { type, parts },
  );
}

/** Waits for the channel table row of `name` with `subs` subscriptions; returns the row's cells. */
function waitChannelRow(page, name, subs) {
  return waitPage(
    page,
    `channel ${name} with ${subs} subscription(s) in #channels`,
    ({ name, subs }) => {
      for (const row of document.querySelectorAll('#channels tbody tr')) {
        if (row.dataset.channel !== name) continue;
        const cells = [...row.cells].map((c) => c.textContent.trim());
        return cells[1] === String(subs) ? cells : false;
      }
      return false;
    },
    { name, subs },
  );
}

/** The integer in a stat element (e.g. #stat-connections), or NaN. */
const statValue = (page, id) => page.$eval(id, (e) => Number(e.textContent.trim()));

/** Signs in with the admin token and waits for the dashboard with app-1 selected and the log live. */
async function signInWithToken(page) {
  await page.fill('#token', TOKEN);
  await page.click('#connect');
  await waitPage(
    page,
    `option ${APPS.main.id} in #app-select after signing in with the admin token`,
    (id) => [...document.querySelectorAll('#app-select option')].some((o) => o.value === id),
    APPS.main.id,
  );
  await page.selectOption('#app-select', APPS.main.id);
  await waitPage(page, 'the log stream to be live (#log-status[data-state=live])', () =>
    document.querySelector('#log-status')?.dataset.state === 'live',
  );
  await waitPage(page, 'the first state poll (#stat-connections is a number)', () =>
    /^\d+$/.test(document.querySelector('#stat-connections')?.textContent.trim() || ''),
  );
}

// ---------------------------------------------------------------------------------------------
// Tests

test('the page is served without auth; the API answers 401 JSON without credentials', { timeout: TEST_MS }, async () => {
  const page = await fetch(`${adminBase()}/console`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') || '', /^text\/html/);
  const html = await page.text();
  for (const id of ['token', 'key', 'secret', 'connect', 'app-select', 'channels', 'log', 'send']) {
    assert.ok(html.includes(`id="${id}"`), `the page has no element #${id}`);
  }
  const cases = [
    ['no Authorization header', {}],
    ['a wrong admin token', { authorization: 'Bearer wrong-token' }],
    [
      'a wrong app secret',
      { authorization: `Basic ${Buffer.from(`${APPS.main.key}:wrong-secret`).toString('base64')}` },
    ],
  ];
  for (const [what, headers] of cases) {
    const res = await fetch(`${adminBase()}/console/api/apps`, { headers });
    const text = await res.text();
    assert.equal(res.status, 401, `GET /console/api/apps with ${what} answered ${res.status}: ${text}`);
    let body;
    assert.doesNotThrow(() => (body = JSON.parse(text)), `401 body with ${what} is not JSON: ${text}`);
    assert.equal(typeof body.error, 'string', `401 body with ${what} has no "error" string: ${text}`);
  }
  const ok = await fetch(`${adminBase()}/console/api/apps`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 200, `GET /console/api/apps with the admin token answered ${ok.status}`);
  const { apps } = await ok.json();
  assert.ok(Array.isArray(apps) && apps.some((a) => a.id === APPS.main.id && a.key === APPS.main.key), JSON.stringify(apps));
});

test('wrong credentials show a 401 error on the sign-in panel', { timeout: TEST_MS }, async () => {
  const { context, page, problems } = await openConsole();
  try {
    const attempts = [
      ['a wrong admin token', async () => page.fill('#token', 'not-the-console-token')],
      [
        'an app key with a wrong secret',
        async () => {
          await page.fill('#key', APPS.main.key);
          await page.fill('#secret', 'not-the-secret');
        },
      ],
    ];
    for (const [what, fill] of attempts) {
      await page.goto(`${adminBase()}/console`); // a fresh page: nothing left from the last attempt
      await fill();
      await page.click('#connect');
      const shown = await waitPage(page, `a visible 401 error in #signin-error after signing in with ${what}`, () => {
        const e = document.querySelector('#signin-error');
        return e && !e.hidden && e.offsetParent !== null && /401/.test(e.textContent) ? e.textContent : false;
      });
      assert.match(shown, /401/);
      assert.ok(await page.isHidden('#dashboard'), `the dashboard is visible after signing in with ${what}`);
      assert.ok(await page.isVisible('#connect'), 'the sign-in panel is gone');
    }
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('live counts, channels, members, log and the send form', { timeout: TEST_MS }, async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const { context, page, problems } = await openConsole();
  try {
    await signInWithToken(page);

    // 1. a pusher-js client subscribes: the log shows it, the channel table counts it
    const client = await ctx.connectedClient();
    const { channel } = await client.subscribe('console-demo');
    await waitLogRow(page, `subscribed console-demo by ${client.socketId}`, 'subscribed', [
      'console-demo',
      client.socketId,
    ]);
    await waitLogRow(page, `connection_opened of ${client.socketId}`, 'connection_opened', [client.socketId]);
    const cells = await waitChannelRow(page, 'console-demo', 1);
    assert.equal(cells[0], 'console-demo');
    await waitPage(page, '#stat-connections >= 1 and #stat-channels >= 1', () =>
      Number(document.querySelector('#stat-connections').textContent) >= 1 &&
      Number(document.querySelector('#stat-channels').textContent) >= 1,
    );
    if (!CLUSTER && !LB) {
      assert.ok((await statValue(page, '#stat-node-connections')) >= 1, 'this node has the client');
      assert.equal(await statValue(page, '#stat-nodes'), 1, '#stat-nodes on a single node');
    }

    // 2. a presence member shows up when its channel is clicked
    const member = await ctx.connectedClient({ presence: { user_id: 'console-user', user_info: { name: 'Ada' } } });
    await member.subscribe('presence-console');
    await waitChannelRow(page, 'presence-console', 1);
    await page.click('#channels tbody tr[data-channel="presence-console"]');
    await waitPage(page, 'member console-user (info name Ada) in #members', () => {
      const m = document.querySelector('#members');
      return m && m.offsetParent !== null && m.textContent.includes('console-user') && m.textContent.includes('Ada');
    });

    // 3. an SDK trigger appears in the log as an api_event with its name and data, as text
    const marker = `m${Date.now().toString(36)}`;
    const payload = { marker, html: '<img src=x onerror="window.__consoleXss=1">', text: 'héllo ✓' };
    const got = client.on(channel, 'sdk-event');
    const res = await ctx.sdk().trigger('console-demo', 'sdk-event', payload);
    assert.equal(res.status, 200);
    await got.nth(1, 'sdk-event at the pusher-js client');
    await waitLogRow(page, `api_event sdk-event with data ${JSON.stringify(payload)}`, 'api_event', [
      'console-demo',
      'sdk-event',
      JSON.stringify(payload),
    ]);
    const injected = await page.evaluate(() => ({
      elements: document.querySelectorAll('#log img, #log script, #log b').length,
      flag: window.__consoleXss === undefined ? null : window.__consoleXss,
    }));
    assert.deepEqual(injected, { elements: 0, flag: null }, 'event data was inserted as HTML');

    // 4. the form: a bad channel name is refused with the server's 400 ...
    await page.fill('#send-channel', 'not a valid channel');
    await page.fill('#send-event', 'console-test');
    await page.fill('#send-data', 'x');
    await page.click('#send');
    const refused = await waitPage(page, '#send-result[data-state=error] for an invalid channel name', () => {
      const r = document.querySelector('#send-result');
      return r && r.dataset.state === 'error' ? r.textContent : false;
    });
    assert.match(refused, /400/);

    // ... and a good one reaches the pusher-js client with exactly the data typed in
    const data = JSON.stringify({ from: 'console', n: 42, html: '<b>bold</b> & "quotes"', unicode: 'héllo ✓' });
    const fromForm = client.on(channel, 'console-test');
    await page.fill('#send-channel', 'console-demo');
    await page.fill('#send-event', 'console-test');
    await page.fill('#send-data', data);
    await page.click('#send');
    const sent = await waitPage(page, '#send-result[data-state=ok] after sending to console-demo', () => {
      const r = document.querySelector('#send-result');
      if (r && r.dataset.state === 'error') throw new Error(`the form's trigger failed: ${r.textContent}`);
      return r && r.dataset.state === 'ok' ? r.textContent : false;
    });
    assert.match(sent, /console-test/);
    const ev = await fromForm.nth(1, 'console-test (sent by the form) at the pusher-js client');
    assert.deepEqual(ev.data, JSON.parse(data));
    assert.equal(fromForm.length, 1, 'the form sent the event more than once');

    const rows = await page.$$eval('#log .row', (rs) => rs.length);
    assert.ok(rows <= 500, `the log has ${rows} rows (cap 500)`);
    assert.deepEqual(problems, []);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console.png'), fullPage: true });
  } catch (e) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-failure.png'), fullPage: true }).catch(() => {});
    if (problems.length) e.message += `\npage problems: ${problems.join('\n')}`;
    throw e;
  } finally {
    await context.close();
  }
});
