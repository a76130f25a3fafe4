// Test harness for the Herald compatibility suite.
//
// - starts the `herald` binary on free loopback ports with a generated TOML config,
// - waits for /health on the metrics port,
// - in cluster mode (HERALD_COMPAT_CLUSTER=N, `npm run test:cluster`) starts a private
//   redis-server and N herald nodes on it instead, waits for every node's /ready, and spreads
//   clients and API calls over the nodes,
// - in load-balancer mode (HERALD_COMPAT_LB=1, `npm run test:lb`) also starts an haproxy process
//   in front of the nodes and sends every client and API call through it,
// - hands out real pusher-js clients (wrapped so every frame, state change and
//   error is recorded) and real `pusher` server SDK instances,
// - offers a raw WebSocket (the faye-websocket client bundled in pusher-js) and a
//   hand-signed HTTP request helper for wire-level assertions,
// - disconnects every client after each test and kills the server(s) after the file.
//
// Waiting is always event driven with a deadline (Recorder.until); nothing sleeps
// to wait for a condition. The only fixed-length waits are `observe()` windows used
// to prove that something does NOT happen, and those are kept short and explicit.

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before } from 'node:test';

import PusherJS from 'pusher-js'; // Node build; already includes tweetnacl (PusherWithEncryption)
import PusherSDK from 'pusher';

// faye-websocket (bundled in pusher-js) arms a 30 s close-handshake timer in close() even when
// the socket is already closed, which pusher-js does after every server-initiated close (4001,
// 4009, ...). Unref it so a finished test file does not wait 30 s to exit; behaviour is unchanged.
{
  const runtime = PusherJS.Runtime;
  const create = runtime.createWebSocket;
  runtime.createWebSocket = function (url) {
    const ws = create.call(this, url);
    const close = ws.close;
    ws.close = function (...args) {
      const r = close.apply(this, args);
      if (this._closeTimer && typeof this._closeTimer.unref === 'function') this._closeTimer.unref();
      return r;
    };
    return ws;
  };
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../..');
export const HERALD_BIN = process.env.HERALD_BIN
  ? path.resolve(process.env.HERALD_BIN)
  : path.resolve(HERE, '../../target/debug/herald');

/**
 * Load-balancer mode: HERALD_COMPAT_LB=1 (`npm run test:lb`) runs a cluster (below) behind one
 * haproxy process; pusher-js clients and API calls go through haproxy unless pinned to a node.
 * Tests that only make sense on one process use `{ skip: CLUSTER && 'reason' }`.
 */
export const LB = (() => {
  const v = (process.env.HERALD_COMPAT_LB || '').trim();
  if (v === '' || v === '0') return false;
  if (v !== '1') throw new Error(`HERALD_COMPAT_LB must be 1 or unset, got '${v}'`);
  return true;
})();

/**
 * Cluster mode: HERALD_COMPAT_CLUSTER=N (N >= 1) runs every test file against N herald nodes that
 * share one private redis-server; unset or 0 runs a single node with the in-memory backplane.
 * Load-balancer mode (HERALD_COMPAT_LB=1) implies a cluster, of 3 nodes unless N says otherwise.
 */
export const CLUSTER = (() => {
  const v = (process.env.HERALD_COMPAT_CLUSTER || '').trim();
  if (v === '' || v === '0') {
    if (LB && v === '') return 3;
    if (LB) throw new Error('HERALD_COMPAT_LB=1 needs a cluster (HERALD_COMPAT_CLUSTER >= 1 or unset)');
    return 0;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 16) {
    throw new Error(`HERALD_COMPAT_CLUSTER must be a node count between 1 and 16, got '${v}'`);
  }
  return n;
})();

/**
 * The Redis of cluster mode (HERALD_COMPAT_REDIS): `tls` starts it TLS-only (`--port 0
 * --tls-port …`) with `requirepass`, a CA and server certificate made with `openssl` for the run,
 * and the nodes connect with `rediss://:PASSWORD@…` and `redis_tls_ca_file`; `cluster` starts a
 * Redis Cluster of 3 masters and 3 replicas and the nodes use `redis+cluster://…` (sharded
 * pub/sub); unset or `plain` starts one plain redis-server.
 */
export const REDIS_MODE = (() => {
  const v = (process.env.HERALD_COMPAT_REDIS || '').trim();
  if (v === '') return 'plain';
  if (!['plain', 'tls', 'cluster'].includes(v)) {
    throw new Error(`HERALD_COMPAT_REDIS must be plain, tls, cluster or unset, got '${v}'`);
  }
  return v;
})();
const REDIS_TLS = REDIS_MODE === 'tls';

/** Default deadline for any single awaited condition. */
export const WAIT_MS = Number(process.env.HERALD_COMPAT_WAIT_MS || 5000);
/** Per-test timeout to pass to node:test `test(name, { timeout: TEST_TIMEOUT }, fn)`. */
export const TEST_TIMEOUT = 20000;

export const SOCKET_ID_RE = /^\d+\.\d+$/;

export const APPS = {
  main: { id: 'app-1', key: 'app-key', secret: 'app-secret' },
  disabled: { id: 'app-2', key: 'app2-key', secret: 'app2-secret' },
  noClientEvents: { id: 'app-3', key: 'app3-key', secret: 'app3-secret' },
  authorized: { id: 'app-4', key: 'app4-key', secret: 'app4-secret' },
};

/** The encryption master key lives only in the tests (SDK + pusher-js); Herald never sees it. */
export const MASTER_KEY_BASE64 = crypto.randomBytes(32).toString('base64');

// The apps of the generated config, in order: [id, the lines of its [[apps]] table].
const APP_TABLES = [
  ['app-1', `id = "app-1"
key = "app-key"
secret = "app-secret"
client_events = true
user_authentication = true
watchlist_events = true
subscription_count = true
`],
  ['app-2', `id = "app-2"
key = "app2-key"
secret = "app2-secret"
enabled = false
`],
  ['app-3', `id = "app-3"
key = "app3-key"
secret = "app3-secret"
`],
  ['app-4', `id = "app-4"
key = "app4-key"
secret = "app4-secret"
user_authentication = true
require_authorized_connection = true
authorized_connection_timeout_secs = 1
`],
];

/**
 * The TOML config of a test file. `topLevel`: extra top-level lines (they go before the first
 * [[apps]]); `appTables`: { 'app-1': 'TOML' } extra lines appended to that app's table, e.g.
 * `[[apps.webhooks]]` sub-tables. Without extras this is the config every file has always used.
 */
export function configToml({ topLevel = '', appTables = {} } = {}) {
  for (const id of Object.keys(appTables)) {
    if (!APP_TABLES.some(([a]) => a === id)) throw new Error(`configToml: no app '${id}'`);
  }
  const head = '# generated by tests/compat/harness.mjs\n' + (topLevel ? `${topLevel.trim()}\n\n` : '');
  return (
    head +
    APP_TABLES.map(
      ([id, lines]) => `[[apps]]\n${lines}${appTables[id] ? `\n${appTables[id].trim()}\n` : ''}`,
    ).join('\n')
  );
}

const CONFIG_TOML = configToml();

// ---------------------------------------------------------------------------------------------
// Small utilities

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves after `ms`. Only for bounded "nothing else happens" observation windows. */
export function observe(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export function withDeadline(promise, ms, label) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function httpGetStatus(url, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * An append-only list of observations that can be awaited:
 * `await rec.until(items => items.some(...), 'what')` re-checks on every push and fails
 * after the deadline with the label and the recorded items.
 */
export class Recorder {
  constructor(name = 'recorder') {
    this.name = name;
    this.items = [];
    this.waiters = new Set();
  }

  push(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) w();
  }

  get length() {
    return this.items.length;
  }

  /** Waits until `pred(items)` returns a truthy value and resolves with it. `pred` may throw to fail fast. */
  until(pred, label = 'condition', ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const check = () => {
        let v;
        try {
          v = pred(this.items);
        } catch (e) {
          done();
          reject(e);
          return true;
        }
        if (v) {
          done();
          resolve(v);
          return true;
        }
        return false;
      };
      const done = () => {
        if (timer) clearTimeout(timer);
        this.waiters.delete(check);
      };
      if (check()) return;
      this.waiters.add(check);
      timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${label} on ${this.name}; recorded: ` +
              safeJson(this.items).slice(0, 4000),
          ),
        );
      }, ms);
    });
  }

  /** Waits for the n-th item (1-based) and returns it. */
  async nth(n, label, ms = WAIT_MS) {
    await this.until((items) => items.length >= n, label || `${n} item(s)`, ms);
    return this.items[n - 1];
  }
}

function safeJson(v) {
  try {
    return JSON.stringify(v, (k, x) => (x instanceof Error ? String(x) : x));
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes (herald nodes and, in cluster mode, one redis-server per test file)

const SETPRIV = process.platform === 'linux' && !process.env.HERALD_COMPAT_NO_SETPRIV ? which('setpriv') : null;

/** SIGKILLs (by pid) of the processes not stopped yet, for a test process that is killed. */
const runningKillers = new Set();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    for (const kill of runningKillers) kill();
    process.kill(process.pid, sig); // the listener is gone: default action
  });
}

/**
 * Spawns `cmd` and keeps its combined output. `label` prefixes streamed lines
 * (HERALD_COMPAT_LOG) and the dump after the file (HERALD_COMPAT_DUMP_LOGS).
 * stop() sends SIGTERM to the pid, then SIGKILL after 3 s; the process is also killed by pid
 * if the test process exits first.
 */
function spawnManaged(cmd, args, { label, cleanupDir, env = process.env } = {}) {
  // On Linux, util-linux `setpriv --pdeathsig KILL` execs the command (same pid) with a parent-death
  // signal, so the processes go away even if this test process dies without running any hook.
  const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });

  const LOG_CAP = 2 * 1024 * 1024;
  let log = '';
  let pending = '';
  const prefix = label ? `[${label}] ` : '';
  const onData = (chunk) => {
    const text = chunk.toString('utf8');
    if (log.length < LOG_CAP) log += text;
    if (!process.env.HERALD_COMPAT_LOG) return;
    if (!prefix) {
      process.stderr.write(chunk);
      return;
    }
    // prefix whole lines so the output of several processes stays readable
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop();
    if (lines.length) process.stderr.write(lines.map((l) => `${prefix}${l}\n`).join(''));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      if (pending && process.env.HERALD_COMPAT_LOG) process.stderr.write(`${prefix}${pending}\n`);
      pending = '';
      resolve(exited);
    });
  });
  let spawnError = null;
  child.on('error', (e) => {
    spawnError = e;
  });

  const killOnExit = () => {
    if (exited === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }
  };
  process.on('exit', killOnExit);
  runningKillers.add(killOnExit);

  return {
    pid: child.pid,
    logs: () => log,
    /** Resolves with { code, signal } when the process has exited. */
    exited: () => exitPromise,
    /** null while running, else { code, signal } or { error } if it could not be spawned. */
    status: () => (spawnError ? { error: spawnError.message } : exited),
    async stop() {
      process.off('exit', killOnExit);
      runningKillers.delete(killOnExit);
      if (exited === null && !spawnError && child.pid) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch {}
        let timer;
        const res = await Promise.race([
          exitPromise,
          new Promise((resolve) => {
            timer = setTimeout(() => resolve(null), 3000);
          }),
        ]);
        clearTimeout(timer);
        if (res === null) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {}
          await exitPromise;
        }
      }
      if (cleanupDir) fs.rmSync(cleanupDir, { recursive: true, force: true });
      if (process.env.HERALD_COMPAT_DUMP_LOGS) {
        const name = label || 'herald';
        process.stderr.write(`\n----- ${name} output -----\n${log}\n-------------------------\n`);
      }
    },
  };
}

/**
 * The environment for herald: the test's own, minus the suite's knobs (HERALD_BIN,
 * HERALD_COMPAT_*), which herald would otherwise warn about as unknown HERALD_ variables.
 */
function heraldEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k === 'HERALD_BIN' || k.startsWith('HERALD_COMPAT_')) delete env[k];
  }
  return env;
}

/** Ports already given to a process of this test file; never handed out twice. */
const handedOut = new Set();

/** `n` free ports, distinct from each other and from earlier ones, never Redis' default 6379. */
/** Whether a listener can bind 127.0.0.1:`port` right now. */
function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freePorts(n) {
  const ports = [];
  while (ports.length < n) {
    const p = await freePort();
    if (p === 6379 || handedOut.has(p)) continue;
    handedOut.add(p);
    ports.push(p);
  }
  return ports;
}

/**
 * Runs `start` again (up to 3 attempts, with new ports) when the process could not bind because
 * something else on the machine took a port between freePort() and the bind.
 */
async function retryOnPortClash(start) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      if (attempt >= 3 || !/address already in use/i.test(String(e && e.message))) throw e;
    }
  }
}

/**
 * Starts one herald process and waits until it is up: /health answers 200 in single-node
 * mode, /ready answers 200 when `redisUrl` is given (/ready stays 503 until Redis is connected).
 */
export function startHerald(opts = {}) {
  return retryOnPortClash(() => startHeraldOnce(opts));
}

async function startHeraldOnce({ config = CONFIG_TOML, redisUrl = null, redisToml = '', label, ports = null } = {}) {
  // redisToml: top-level keys for the Redis (TLS CA, key prefix), before the first [[apps]]
  if (!fs.existsSync(HERALD_BIN)) {
    throw new Error(
      `herald binary not found at ${HERALD_BIN}: build it with \`cargo build -p herald-server\` ` +
        `(or set HERALD_BIN)`,
    );
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-compat-'));
  const configPath = path.join(dir, 'herald.toml');
  // top-level keys must come before the first [[apps]] table
  const text = redisUrl ? clusterHeader(redisUrl, redisToml) + config : config;
  fs.writeFileSync(configPath, text);

  // a restart passes the ports it had: haproxy's configuration names them
  const [port, metricsPort] = ports || (await freePorts(2));
  const args = [
    '--config',
    configPath,
    '--bind',
    `127.0.0.1:${port}`,
    '--metrics-bind',
    `127.0.0.1:${metricsPort}`,
  ];
  const proc = spawnManaged(HERALD_BIN, args, { label, cleanupDir: dir, env: heraldEnv() });

  const server = {
    label: label || 'herald',
    port,
    metricsPort,
    pid: proc.pid,
    configPath,
    wsBase: `ws://127.0.0.1:${port}`,
    httpBase: `http://127.0.0.1:${port}`,
    logs: proc.logs,
    status: proc.status,
    exited: proc.exited,
    stop: () => proc.stop(),
    /** Sends `signal` (SIGKILL, SIGTERM, SIGSTOP, SIGCONT, ...) to the process. */
    signal: (signal) => process.kill(proc.pid, signal),
    /** Starts the same node again (same config, ports and label) once this process has exited. */
    restart: () => startHeraldOnce({ config, redisUrl, redisToml, label, ports: [port, metricsPort] }),
  };

  const probe = redisUrl ? '/ready' : '/health';
  const url = `http://127.0.0.1:${metricsPort}${probe}`;
  const deadline = Date.now() + 10000;
  const fail = async (why) => {
    await server.stop();
    throw new Error(
      `${server.label} ${why}\ncommand: ${HERALD_BIN} ${args.join(' ')}\n` +
        `----- config -----\n${text}----- ${server.label} output -----\n${proc.logs()}`,
    );
  };
  for (;;) {
    const st = proc.status();
    if (st) await fail(`exited during startup (${JSON.stringify(st)})`);
    const status = await httpGetStatus(url, 500);
    if (status === 200) break;
    if (Date.now() > deadline) await fail(`did not answer 200 on ${url} within 10 s (last status ${status})`);
    await observe(50);
  }
  return server;
}

function clusterHeader(redisUrl, redisToml = '') {
  return (
    `# cluster mode (HERALD_COMPAT_CLUSTER)\n` +
    `redis_url = "${redisUrl}"\n` +
    redisToml +
    (redisToml.includes('redis_prefix') ? '' : `redis_prefix = "compat"\n`) +
    `heartbeat_interval_secs = 1\n` +
    `node_timeout_secs = 3\n` +
    (LB ? `drain_secs = 2\n` : '') +
    `\n`
  );
}

/** Full path of an executable found on PATH, or null. */
function which(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

/**
 * Resolves true when a connection to the port answers +PONG to PING (over TLS with `auth`'s CA
 * and password when given).
 */
function redisPing(port, timeoutMs, auth = null) {
  return new Promise((resolve) => {
    let buf = '';
    const sock = auth
      ? tls.connect({ host: '127.0.0.1', port, ca: auth.ca })
      : net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('error', () => done(false));
    const hello = auth ? `AUTH ${auth.password}\r\nPING\r\n` : 'PING\r\n';
    sock.on(auth ? 'secureConnect' : 'connect', () => sock.write(hello));
    // AUTH answers +OK first; the PING's answer is the last line
    const lines = auth ? 2 : 1;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const got = buf.split('\r\n').filter(Boolean);
      if (got.length >= lines) done(got[lines - 1].startsWith('+PONG'));
    });
  });
}

/**
 * A private redis-server on a free loopback port (never 6379), without persistence; in
 * HERALD_COMPAT_REDIS=cluster mode a private Redis Cluster instead.
 */
export function startRedis() {
  if (REDIS_MODE === 'cluster') {
    // One Redis Cluster for every test file (with-redis-cluster.mjs starts it): each file's
    // nodes get a key prefix of their own.
    const shared = (process.env.HERALD_COMPAT_REDIS_URL || '').trim();
    if (shared) {
      return Promise.resolve({
        url: shared,
        urlAt: () => {
          throw new Error('HERALD_COMPAT_REDIS=cluster does not put proxies in front of a Redis Cluster');
        },
        toml: '',
        prefix: `compat-${process.pid}`,
        logs: () => '',
        stop: async () => {},
        restart() {
          throw new Error('HERALD_COMPAT_REDIS=cluster cannot restart a Redis Cluster');
        },
      });
    }
    return retryOnPortClash(startRedisCluster);
  }
  return retryOnPortClash(startRedisOnce);
}

/** Runs redis-cli with `args`; its output (throws with the output if it fails). */
function redisCli(args) {
  const bin = which('redis-cli');
  if (!bin) throw new Error('redis-cli is not on PATH: install it: sudo apt-get install -y redis-tools');
  return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Six redis-servers with `--cluster-enabled yes` joined by `redis-cli --cluster create
 * --cluster-replicas 1` (3 masters, 3 replicas); resolves once every node reports
 * `cluster_state:ok` and every replica is in sync. No restart (the fault tests use one server).
 */
export async function startRedisCluster() {
  const bin = which('redis-server');
  if (!bin) {
    throw new Error(
      'cluster mode needs redis-server, which is not on PATH: install it: sudo apt-get install -y redis-server',
    );
  }
  // redis-server refuses a cluster port above 55535: its bus listens 10000 higher
  const ports = [];
  while (ports.length < 6) {
    const [p] = await freePorts(1);
    if (p <= 55535 && (await portFree(p + 10000))) ports.push(p);
  }
  const procs = [];
  const stopAll = () => Promise.all(procs.map((p) => p.stop()));
  try {
    for (const port of ports) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-compat-rcluster-'));
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
      args.push('--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'));
      args.push('--cluster-node-timeout', '2000');
      procs.push(spawnManaged(bin, args, { label: `redis-${port}`, cleanupDir: dir }));
    }
    const deadline = Date.now() + 10000;
    for (const port of ports) {
      while (!(await redisPing(port, 500))) {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING within 10 s`);
        await observe(50);
      }
    }
    redisCli(['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes']);
    const healthy = Date.now() + 60000;
    for (const port of ports) {
      for (;;) {
        const info = redisCli(['-p', String(port), 'CLUSTER', 'INFO']);
        const repl = redisCli(['-p', String(port), 'INFO', 'replication']);
        if (info.includes('cluster_state:ok') && (repl.includes('role:master') || repl.includes('master_link_status:up'))) break;
        if (Date.now() > healthy) throw new Error(`Redis Cluster node ${port} never became healthy:\n${info}\n${repl}`);
        await observe(100);
      }
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    port: ports[0],
    ports,
    pid: procs[0].pid,
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    urlAt: () => {
      throw new Error('HERALD_COMPAT_REDIS=cluster does not put proxies in front of a Redis Cluster');
    },
    toml: '',
    logs: () => procs.map((p) => p.logs()).join('\n'),
    stop: stopAll,
    restart() {
      throw new Error('HERALD_COMPAT_REDIS=cluster cannot restart a Redis Cluster');
    },
  };
}

async function startRedisOnce(fixedPort = null) {
  const bin = which('redis-server');
  if (!bin) {
    throw new Error(
      'cluster mode needs redis-server, which is not on PATH: install it: sudo apt-get install -y redis-server',
    );
  }
  const [port] = fixedPort ? [fixedPort] : await freePorts(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-compat-redis-'));
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const auth = REDIS_TLS ? redisTlsMaterial() : null;
  if (auth) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', 'no');
    args.push('--tls-ca-cert-file', auth.caFile, '--tls-cert-file', auth.certFile, '--tls-key-file', auth.keyFile);
    args.push('--requirepass', auth.password);
  } else {
    args.push('--port', String(port));
  }
  const proc = spawnManaged(bin, args, { label: 'redis', cleanupDir: dir });
  /** The URL of this Redis as reached on `p` (its own port, or a proxy's in front of it). */
  const urlAt = (p) => (auth ? `rediss://:${auth.password}@127.0.0.1:${p}/` : `redis://127.0.0.1:${p}/`);
  const redis = {
    port,
    pid: proc.pid,
    url: urlAt(port),
    urlAt,
    /** Top-level keys a node needs beside redis_url (the CA, in TLS mode). */
    toml: auth ? `redis_tls_ca_file = ${JSON.stringify(auth.caFile)}\n` : '',
    logs: proc.logs,
    stop: () => proc.stop(),
    /** Kills this redis-server (SIGKILL) and starts an empty one on the same port. */
    async restart() {
      process.kill(proc.pid, 'SIGKILL');
      await proc.exited();
      await proc.stop();
      return startRedisOnce(port);
    },
  };
  const deadline = Date.now() + 10000;
  for (;;) {
    const st = proc.status();
    const why = st
      ? `exited during startup (${JSON.stringify(st)})`
      : Date.now() > deadline
        ? `did not answer PING on port ${port} within 10 s`
        : null;
    if (why) {
      await redis.stop();
      throw new Error(`redis-server ${why}\ncommand: ${bin} ${args.join(' ')}\n----- output -----\n${proc.logs()}`);
    }
    if (await redisPing(port, 500, auth)) return redis;
    await observe(50);
  }
}

let tlsMaterial = null;

/**
 * A CA, a server certificate for 127.0.0.1 signed by it and a password, made once per run with
 * `openssl` in a directory removed at exit.
 */
function redisTlsMaterial() {
  if (tlsMaterial) return tlsMaterial;
  if (!which('openssl')) {
    throw new Error('HERALD_COMPAT_REDIS=tls needs openssl, which is not on PATH: install it: sudo apt-get install -y openssl');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-compat-tls-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const f = (name) => path.join(dir, name);
  const ssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-subj', '/CN=herald compat CA', '-days', '2');
  ssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('server.pem'), '-days', '2', '-extfile', f('san.ext'));
  tlsMaterial = {
    caFile: f('ca.pem'),
    certFile: f('server.pem'),
    keyFile: f('server.key'),
    ca: fs.readFileSync(f('ca.pem')),
    password: crypto.randomBytes(12).toString('hex'),
  };
  return tlsMaterial;
}

/**
 * A TCP proxy between one node and Redis, so a test can partition that node alone:
 * `cut()` closes every connection and refuses new ones, `stall()` keeps them open but moves no
 * byte (held until healed, as TCP would retransmit it), `heal()` lets everything through again.
 */
export async function startTcpProxy(targetPort) {
  const links = new Set();
  let open = true;
  let stalled = false;
  const held = new Set(); // resume callbacks of paused directions
  const pipe = (from, to) => {
    from.on('data', (chunk) => {
      if (!stalled) return void to.write(chunk);
      from.pause();
      held.add(() => {
        to.write(chunk);
        from.resume();
      });
    });
  };
  const server = net.createServer((down) => {
    if (!open) return void down.destroy();
    const up = net.connect({ host: '127.0.0.1', port: targetPort });
    const link = { down, up };
    links.add(link);
    const close = () => {
      links.delete(link);
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on('error', close);
      s.on('close', close);
    }
    pipe(down, up);
    pipe(up, down);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `redis://127.0.0.1:${port}/`,
    cut() {
      open = false;
      for (const { down, up } of [...links]) {
        down.destroy();
        up.destroy();
      }
    },
    stall() {
      stalled = true;
    },
    heal() {
      open = true;
      stalled = false;
      const resume = [...held];
      held.clear();
      for (const r of resume) r();
    },
    stop() {
      this.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Starts redis-server and `n` herald nodes sharing it (same apps, prefix "compat", 1 s
 * heartbeats, 3 s node timeout); resolves when every node's /ready answers 200.
 */
export async function startCluster(n, { config = CONFIG_TOML, proxied = false } = {}) {
  const redis = await startRedis();
  // with `proxied`, each node reaches Redis through its own TCP proxy (see startTcpProxy)
  const proxies = proxied ? await Promise.all(Array.from({ length: n }, () => startTcpProxy(redis.port))) : [];
  const started = await Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      startHerald({
        config,
        redisUrl: proxied ? redis.urlAt(proxies[i].port) : redis.url,
        redisToml: redis.toml + (redis.prefix ? `redis_prefix = "${redis.prefix}"\n` : ''),
        label: `node${i}`,
      }),
    ),
  );
  const servers = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(proxies.map((p) => p.stop()));
    await redis.stop();
    throw failed.reason;
  }
  return { redis, servers, proxies };
}

/** haproxy: on PATH, else the Debian location (/usr/sbin is not on every user's PATH). */
function haproxyBin() {
  const found = which('haproxy');
  if (found) return found;
  for (const p of ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy']) {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

/** Sends one command to haproxy's stats socket and resolves with the whole answer ('' on error). */
function haproxyCommand(socketPath, command, timeoutMs = 1000) {
  return new Promise((resolve) => {
    let buf = '';
    const sock = net.connect({ path: socketPath });
    const done = () => {
      sock.destroy();
      resolve(buf);
    };
    sock.setTimeout(timeoutMs, done);
    sock.on('error', done);
    sock.on('connect', () => sock.write(`${command}\n`));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
    });
    sock.on('end', done);
  });
}

/** { node0: 'UP', node1: 'DOWN', ... } from `show stat` of the backend `nodes`. */
async function haproxyServerStates(socketPath) {
  const csv = await haproxyCommand(socketPath, 'show stat');
  const lines = csv.split('\n');
  const header = (lines.shift() || '').replace(/^# /, '').split(',');
  const [px, sv, st] = ['pxname', 'svname', 'status'].map((k) => header.indexOf(k));
  const states = {};
  if (px < 0 || sv < 0 || st < 0) return states;
  for (const line of lines) {
    const f = line.split(',');
    if (f[px] === 'nodes' && /^node\d+$/.test(f[sv])) states[f[sv]] = f[st];
  }
  return states;
}

/**
 * The haproxy configuration of load-balancer mode: HTTP mode, round robin, WebSocket upgrades
 * kept open as tunnels, each node health-checked with GET /ready on its metrics port (a draining
 * node answers 503 and is taken out), failed connects retried on another node. Every response
 * carries `X-Herald-Node: nodeN`, so a client can tell which node it landed on.
 */
export function haproxyConfig({ port, servers, socketPath, balance = 'roundrobin' }) {
  return `# generated by tests/compat/harness.mjs (HERALD_COMPAT_LB)
global
    maxconn 4096
    stats socket ${socketPath} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 10s
    retries 3
    option redispatch 1

frontend herald
    bind 127.0.0.1:${port}
    default_backend nodes

backend nodes
    balance ${balance}
    option httpchk GET /ready
    http-response set-header X-Herald-Node %[srv_name]
    default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 1
${servers.map((s, i) => `    server node${i} 127.0.0.1:${s.port} check port ${s.metricsPort}`).join('\n')}
`;
}

/**
 * Starts haproxy in the foreground (`haproxy -f cfg -db`) on a free loopback port in front of
 * `servers` and resolves when it answers HTTP and reports every node UP. `balance`: haproxy's
 * algorithm (round robin, or `leastconn` where moved clients should land on the emptiest node).
 */
export function startLoadBalancer(servers, { balance } = {}) {
  return retryOnPortClash(() => startLoadBalancerOnce(servers, balance));
}

async function startLoadBalancerOnce(servers, balance) {
  const bin = haproxyBin();
  if (!bin) {
    throw new Error('load-balancer mode needs haproxy, which was not found: install it: sudo apt-get install -y haproxy');
  }
  const [port] = await freePorts(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-compat-lb-'));
  const socketPath = path.join(dir, 'admin.sock');
  const cfgPath = path.join(dir, 'haproxy.cfg');
  const text = haproxyConfig({ port, servers, socketPath, balance });
  fs.writeFileSync(cfgPath, text);
  const args = ['-f', cfgPath, '-db'];
  const proc = spawnManaged(bin, args, { label: 'haproxy', cleanupDir: dir });
  const lb = {
    label: 'haproxy',
    port,
    pid: proc.pid,
    configPath: cfgPath,
    wsBase: `ws://127.0.0.1:${port}`,
    httpBase: `http://127.0.0.1:${port}`,
    logs: proc.logs,
    status: proc.status,
    /** The haproxy view of the nodes: { node0: 'UP', ... }. */
    serverStates: () => haproxyServerStates(socketPath),
    stop: () => proc.stop(),
  };
  const deadline = Date.now() + 10000;
  let last = null;
  for (;;) {
    const st = proc.status();
    const why = st
      ? `exited during startup (${JSON.stringify(st)})`
      : Date.now() > deadline
        ? `did not report every node UP within 10 s (last: ${JSON.stringify(last)})`
        : null;
    if (why) {
      await lb.stop();
      throw new Error(
        `haproxy ${why}\ncommand: ${bin} ${args.join(' ')}\n----- config -----\n${text}----- output -----\n${proc.logs()}`,
      );
    }
    const states = await haproxyServerStates(socketPath);
    const answered = (await httpGetStatus(`${lb.httpBase}/`, 500)) !== null;
    last = { states, answered };
    if (answered && servers.every((_, i) => states[`node${i}`] === 'UP')) return lb;
    await observe(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

/** The node index haproxy reported for a faye WebSocket (`X-Herald-Node: nodeN`), else undefined. */
function lbNodeOf(ws) {
  const v = ws && ws.headers && ws.headers['x-herald-node'];
  const m = typeof v === 'string' && /^node(\d+)$/.exec(v.trim());
  return m ? Number(m[1]) : undefined;
}

/** A pusher-js instance with everything it receives recorded. */
export class Client {
  /**
   * `node`: index of the herald node it connects to (always 0 in single-node mode), or null when
   * it connects through the load balancer: then `node` is the node of its latest connection (from
   * haproxy's X-Herald-Node response header) and `nodes` lists one entry per connection.
   */
  constructor(pusher, label, node = 0) {
    this.pusher = pusher;
    this.label = label;
    this.viaLb = node === null;
    this.pinnedNode = node;
    /** Through the load balancer: { node, socketId, at } per 'connected'. */
    this.nodes = [];
    this.states = new Recorder(`${label}.states`);
    this.errors = new Recorder(`${label}.errors`);
    this.frames = new Recorder(`${label}.frames`);
    // The constructor already called connect(): start from the current state.
    this.states.push(pusher.connection.state);
    pusher.connection.bind('state_change', ({ current }) => {
      if (current === 'connected' && this.viaLb) {
        const conn = pusher.connection.connection;
        const ws = conn && conn.transport && conn.transport.socket;
        this.nodes.push({ node: lbNodeOf(ws), socketId: pusher.connection.socket_id, at: Date.now() });
      }
      this.states.push(current);
    });
    pusher.connection.bind('error', (e) => this.errors.push(e));
    // Bound after Pusher's own 'message' listener, so channels have already handled a frame
    // by the time it is recorded here.
    pusher.connection.bind('message', (f) => this.frames.push(f));
  }

  /** The node it is (or was last) connected to; undefined through the LB before connecting. */
  get node() {
    if (!this.viaLb) return this.pinnedNode;
    return this.nodes.length ? this.nodes[this.nodes.length - 1].node : undefined;
  }

  get state() {
    return this.pusher.connection.state;
  }

  get socketId() {
    return this.pusher.connection.socket_id;
  }

  /** Waits for state 'connected' and returns the socket id. */
  async connected(ms = WAIT_MS) {
    await this.states.until(
      (s) => {
        const last = s[s.length - 1];
        if (last === 'connected') return true;
        if (last === 'failed' || last === 'disconnected') {
          throw new Error(
            `${this.label} ended in '${last}' instead of connecting; errors: ${safeJson(this.errors.items)}`,
          );
        }
        return false;
      },
      'state connected',
      ms,
    );
    return this.socketId;
  }

  /** Records the given events of a pusher-js dispatcher (channel, pusher, user, watchlist, ...). */
  on(dispatcher, events) {
    const names = Array.isArray(events) ? events : [events];
    const rec = new Recorder(`${this.label}:${names.join('|')}`);
    for (const event of names) {
      dispatcher.bind(event, (data, metadata) => rec.push({ event, data, metadata }));
    }
    return rec;
  }

  /** Subscribes and waits for pusher:subscription_succeeded; throws on pusher:subscription_error. */
  async subscribe(name, ms = WAIT_MS) {
    const { channel, result } = this.subscribeRaw(name);
    const first = await result.nth(1, `subscription result for ${name}`, ms);
    if (first.event !== 'pusher:subscription_succeeded') {
      throw new Error(`${this.label}: subscription to ${name} failed: ${safeJson(first.data)}`);
    }
    return { channel, data: first.data };
  }

  /** Subscribes; returns the channel and a recorder of its success/error events. */
  subscribeRaw(name) {
    const channel = this.pusher.subscribe(name);
    const result = this.on(channel, ['pusher:subscription_succeeded', 'pusher:subscription_error']);
    return { channel, result };
  }

  /** Frames received on `channel` that are app events (not pusher:/pusher_internal:). */
  appFrames(channel) {
    return this.frames.items.filter(
      (f) => f.channel === channel && !f.event.startsWith('pusher:') && !f.event.startsWith('pusher_internal:'),
    );
  }

  /** Waits until a frame matching `pred` has been received; returns it. */
  waitFrame(pred, label = 'frame', ms = WAIT_MS) {
    return this.frames.until((fs) => fs.find(pred), label, ms);
  }

  /** Waits for an app event `event` on `channel`; returns the frame. */
  waitEvent(channel, event, ms = WAIT_MS) {
    return this.waitFrame((f) => f.channel === channel && f.event === event, `${event} on ${channel}`, ms);
  }

  /** Signs in (pusher.signin()) and waits for pusher:signin_success; returns its data. */
  async signin(ms = WAIT_MS) {
    const rec = new Recorder(`${this.label}.signin`);
    this.pusher.bind('pusher:signin_success', (data) => rec.push({ event: 'pusher:signin_success', data }));
    this.pusher.bind('pusher:error', (data) => rec.push({ event: 'pusher:error', data }));
    // emitted by pusher-js itself when the user authentication handler fails
    this.pusher.user.bind('pusher:signin_error', (data) => rec.push({ event: 'pusher:signin_error', data }));
    this.pusher.signin();
    const first = await rec.nth(1, 'signin reply', ms);
    if (first.event !== 'pusher:signin_success') {
      throw new Error(`${this.label}: sign-in failed: ${safeJson(first.data)}`);
    }
    // pusher-js parses user_data and resolves signinDonePromise synchronously on signin_success.
    return first.data;
  }

  disconnect() {
    this.pusher.disconnect();
  }
}

/** A raw WebSocket (faye-websocket client bundled inside pusher-js) for wire-level checks. */
export class RawSocket {
  /** `node`: index of the node, or null through the load balancer (then read from haproxy's header). */
  constructor(url, label = 'raw', node = 0) {
    this.url = url;
    this.label = label;
    this.pinnedNode = node;
    this.frames = new Recorder(`${label}.frames`); // { raw, msg } with msg = parsed JSON frame
    this.closes = new Recorder(`${label}.close`); // { code, reason }
    this.opened = new Recorder(`${label}.open`);
    this.ws = PusherJS.Runtime.createWebSocket(url);
    this.ws.onopen = () => this.opened.push(true);
    this.ws.onmessage = (e) => {
      let msg = null;
      try {
        msg = JSON.parse(e.data);
      } catch {}
      this.frames.push({ raw: e.data, msg });
    };
    this.ws.onclose = (e) => this.closes.push({ code: e.code, reason: e.reason });
    this.ws.onerror = () => {};
  }

  /** The node it is connected to; undefined through the LB before the handshake. */
  get node() {
    return this.pinnedNode === null ? lbNodeOf(this.ws) : this.pinnedNode;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Waits for connection_established; returns { socketId, activityTimeout, frame }. */
  async established(ms = WAIT_MS) {
    const first = await this.frames.nth(1, 'first frame', ms);
    if (!first.msg || first.msg.event !== 'pusher:connection_established') {
      throw new Error(`${this.label}: first frame is not connection_established: ${first.raw}`);
    }
    const data = JSON.parse(first.msg.data);
    return { socketId: data.socket_id, activityTimeout: data.activity_timeout, frame: first };
  }

  waitMsg(pred, label = 'frame', ms = WAIT_MS) {
    return this.frames.until((fs) => fs.find((f) => f.msg && pred(f.msg)), label, ms).then((f) => f.msg);
  }

  closed(ms = WAIT_MS) {
    return this.closes.nth(1, 'close', ms);
  }

  close() {
    try {
      this.ws.close();
    } catch {}
  }
}

export function wsUrl(server, key, query = 'protocol=7&client=js&version=8.6.0&flash=false') {
  return `${server.wsBase}/app/${key}${query === null ? '' : `?${query}`}`;
}

// ---------------------------------------------------------------------------------------------
// HTTP API by hand (PROTOCOL.md §6.1), for requests the SDK will not make

/**
 * Sends a request signed as described in PROTOCOL.md §6.1.
 * opts: { app, method, path (signed path, e.g. '/apps/app-1/events'), query (object of extra params),
 *         body (string|object|undefined), secret, key, timestamp, bodyMd5 (override), sendPath (raw
 *         path to put on the wire, default = path), sendQuery (object: values sent percent-encoded) }
 */
export async function signedRequest(server, opts) {
  const app = opts.app || APPS.main;
  const method = (opts.method || 'GET').toUpperCase();
  const body =
    opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const params = {
    auth_key: opts.key ?? app.key,
    auth_timestamp: String(opts.timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    ...(opts.query || {}),
  };
  if (body !== undefined && body.length > 0) {
    params.body_md5 = opts.bodyMd5 ?? crypto.createHash('md5').update(body, 'utf8').digest('hex');
  }
  const canonical = Object.keys(params)
    .map((k) => [k.toLowerCase(), params[k]])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const toSign = `${method}\n${opts.path}\n${canonical}`;
  const signature = crypto
    .createHmac('sha256', opts.secret ?? app.secret)
    .update(toSign)
    .digest('hex');
  const wire = Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  const url = `${server.httpBase}${opts.sendPath || opts.path}?${wire}&auth_signature=${signature}`;
  const res = await fetch(url, {
    method,
    body,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, contentType: res.headers.get('content-type'), text, json };
}

/** Awaits an SDK promise that is expected to reject with a RequestError; returns the error. */
export async function expectRequestError(promise) {
  try {
    const res = await promise;
    throw new Error(`expected the request to fail, got HTTP ${res.status}: ${await res.text()}`);
  } catch (e) {
    if (e && e.name === 'PusherRequestError') return e;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Per-file setup

/**
 * Registers before/afterEach/after hooks: one herald per test file (or, in cluster mode, one
 * redis-server plus CLUSTER herald nodes), all clients created in a test are disconnected after
 * it, every process is stopped after the file.
 *
 * Node choice in cluster mode: each new pusher-js client or raw socket connects to the next node
 * round-robin, so two clients of one test land on different nodes. Each `sdk()` instance and each
 * `signed()` request goes to a node other than the one the latest client connected to (rotating
 * over the others), so a published event normally crosses Redis to reach that client. `sdkOn()`
 * pins an SDK to one node, e.g. to send a marker through the node that handled an action.
 * In single-node mode every index is 0. In load-balancer mode (HERALD_COMPAT_LB=1) clients, raw
 * sockets, `sdk()` and `signed()` go through haproxy instead; a client's `node` is the node haproxy
 * chose (known once connected), so `sdkOn(client)` and `{ node }` still reach one node directly.
 *
 * `topLevel` / `appTables` add lines to the generated config (see configToml), e.g. webhook
 * endpoints; anything they point at (a receiver's port) must exist before useHerald is called.
 */
export function useHerald({ topLevel = '', appTables = {}, proxied = false } = {}) {
  const config = configToml({ topLevel, appTables });
  const ctx = {
    /** The herald nodes (one in single-node mode); `server` / `port` are node 0. */
    servers: [],
    /** The redis-server of this file in cluster mode, else null. */
    redis: null,
    /** The haproxy in front of the nodes in load-balancer mode (HERALD_COMPAT_LB), else null. */
    lb: null,
    /** With `proxied` in cluster mode: node i's TCP proxy to Redis (startTcpProxy). */
    proxies: [],
    live: new Set(),
    counter: 0,
    clientSeq: 0,
    apiSeq: 0,
    lastClientNode: -1,

    get server() {
      return ctx.servers[0] || null;
    },
    get port() {
      return ctx.server ? ctx.server.port : undefined;
    },
    get ports() {
      return ctx.servers.map((s) => s.port);
    },

    /** Node index for the next pusher-js client / raw socket (round-robin). */
    nextClientNode() {
      const i = ctx.clientSeq++ % ctx.servers.length;
      ctx.lastClientNode = i;
      ctx.apiSeq = 0;
      return i;
    },

    /**
     * Node index for the next SDK instance / signed request: never the latest client's node L.
     * The first pick after a client is L-1 (with 3 nodes also not the node the next client
     * gets), further picks rotate over L-2, ..., L+1.
     */
    nextApiNode() {
      const n = ctx.servers.length;
      if (n <= 1) return 0;
      const last = (ctx.lastClientNode + n) % n;
      return (last + n - 1 - (ctx.apiSeq++ % (n - 1))) % n;
    },

    /** Node index for a client / raw socket: `node` if given (pinned), else the next round-robin. */
    clientNode(node) {
      if (node === undefined) return ctx.nextClientNode();
      ctx.lastClientNode = ctx.nodeIndex(node);
      ctx.apiSeq = 0;
      return ctx.lastClientNode;
    },

    nodeIndex(target) {
      const i = typeof target === 'number' ? target : target && target.node;
      if (!Number.isInteger(i) || i < 0 || i >= ctx.servers.length) {
        throw new Error(`no herald node ${safeJson(i)} (have ${ctx.servers.length})`);
      }
      return i;
    },

    /** A `pusher` server SDK instance for `app` (encryption master key set for app-1). */
    sdk(app = APPS.main, extra = {}) {
      if (ctx.lb) return makeSdk(ctx.lb, app, extra);
      return makeSdk(ctx.servers[ctx.nextApiNode()], app, extra);
    },

    /** Like sdk(), but talking to one given node: an index, or a Client / RawSocket (its node). */
    sdkOn(target, app = APPS.main, extra = {}) {
      return makeSdk(ctx.servers[ctx.nodeIndex(target)], app, extra);
    },

    /**
     * A pusher-js client.
     *   app      app whose key to connect with (default app-1)
     *   key      override the key in the URL (unknown-key tests)
     *   presence channel_data object for presence- subscriptions ({user_id, user_info}); when null
     *            the auth response has no channel_data (presence via signed-in user)
     *   user     user object for sign-in ({id, user_info?, watchlist?})
     *   authSdk  SDK used to sign channel/user auth (default: an SDK for `app`); pass one with a
     *            wrong secret to get bad signatures
     *   options  extra pusher-js options
     *   node     node index to connect to (default: next round-robin)
     */
    client({ app = APPS.main, key, presence = null, user = null, authSdk, options = {}, node } = {}) {
      // signing is local: this SDK never makes a request, so it does not take part in rotation
      const signer = authSdk || makeSdk(ctx.server, app);
      // through the load balancer unless pinned to a node; then the node is known once connected
      const i = ctx.lb && node === undefined ? null : ctx.clientNode(node);
      const server = i === null ? ctx.lb : ctx.servers[i];
      const where = i === null ? '@lb' : ctx.servers.length > 1 ? `@node${i}` : '';
      const label = `client#${++ctx.counter}${where}`;
      const pusher = new PusherJS(key || app.key, {
        wsHost: '127.0.0.1',
        wsPort: server.port,
        wssPort: server.port,
        forceTLS: false,
        enabledTransports: ['ws'],
        cluster: 'mt1',
        disableStats: true,
        channelAuthorization: {
          customHandler: ({ socketId, channelName }, cb) => {
            try {
              const data = channelName.startsWith('presence-') && presence ? presence : undefined;
              cb(null, signer.authorizeChannel(socketId, channelName, data));
            } catch (e) {
              cb(e, null);
            }
          },
        },
        userAuthentication: {
          customHandler: ({ socketId }, cb) => {
            try {
              if (!user) throw new Error('test client has no user configured');
              cb(null, signer.authenticateUser(socketId, user));
            } catch (e) {
              cb(e, null);
            }
          },
        },
        ...options,
      });
      const c = new Client(pusher, label, i);
      ctx.live.add(c);
      return c;
    },

    /** A connected client (awaits 'connected'). */
    async connectedClient(opts) {
      const c = ctx.client(opts);
      await c.connected();
      return c;
    },

    /** A raw WebSocket to /app/{key} (node: index, default next round-robin). */
    raw(key = APPS.main.key, query, { node } = {}) {
      const i = ctx.lb && node === undefined ? null : ctx.clientNode(node);
      const where = i === null ? '@lb' : ctx.servers.length > 1 ? `@node${i}` : '';
      const label = `raw#${++ctx.counter}${where}`;
      const r = new RawSocket(wsUrl(i === null ? ctx.lb : ctx.servers[i], key, query), label, i);
      ctx.live.add(r);
      return r;
    },

    /** A hand-signed HTTP API request (see signedRequest); `opts.node` pins the node. */
    signed(opts) {
      if (ctx.lb && opts.node === undefined) return signedRequest(ctx.lb, opts);
      const i = opts.node === undefined ? ctx.nextApiNode() : ctx.nodeIndex(opts.node);
      return signedRequest(ctx.servers[i], opts);
    },

    closeAll() {
      for (const c of ctx.live) {
        try {
          if (c instanceof Client) c.disconnect();
          else c.close();
        } catch {}
      }
      ctx.live.clear();
    },
  };

  before(async () => {
    if (CLUSTER) {
      const { redis, servers, proxies } = await startCluster(CLUSTER, { config, proxied });
      ctx.redis = redis;
      ctx.servers = servers;
      ctx.proxies = proxies;
      if (LB) {
        try {
          ctx.lb = await startLoadBalancer(servers);
        } catch (e) {
          await Promise.allSettled(servers.map((s) => s.stop()));
          await redis.stop();
          throw e;
        }
      }
    } else {
      ctx.servers = [await startHerald({ config })];
    }
  });
  afterEach(() => ctx.closeAll());
  after(async () => {
    ctx.closeAll();
    // the load balancer, every node, then the redis-server they use; each by its own pid
    if (ctx.lb) await ctx.lb.stop();
    await Promise.allSettled(ctx.servers.map((s) => s.stop()));
    await Promise.allSettled(ctx.proxies.map((p) => p.stop()));
    if (ctx.redis) await ctx.redis.stop();
  });
  return ctx;
}

function makeSdk(server, app = APPS.main, extra = {}) {
  const sdk = new PusherSDK({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    port: String(server.port),
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_BASE64,
    ...extra,
  });
  return sdk;
}

/**
 * Subscribes pusher-js client `client` (a `Client`) to the public channel `room` and the presence
 * channel `presence` and records, with timestamps, each subscription result and every `tick`
 * event's `n`: { client, presence (the pusher-js channel), roomSubs, presenceSubs, ticks,
 * tickArrivals }, the
 * subscription recorders holding { at, event: 'succeeded' | 'error', e }. pusher-js resubscribes
 * by itself after a reconnect, so each reconnect adds one entry to both.
 */
export function watchRoomAndPresence(client, room, presence) {
  const t = {
    client,
    roomSubs: new Recorder(`${client.label}.${room}.subscribed`),
    presenceSubs: new Recorder(`${client.label}.${presence}.subscribed`),
    ticks: new Recorder(`${client.label}.ticks`),
    /** Where each tick arrived: { n, socketId, at }, to tell a repeat on one connection from one across two. */
    tickArrivals: [],
  };
  const record = (channel, rec) => {
    channel.bind('pusher:subscription_succeeded', () => rec.push({ at: Date.now(), event: 'succeeded' }));
    channel.bind('pusher:subscription_error', (e) => rec.push({ at: Date.now(), event: 'error', e }));
    return channel;
  };
  record(client.pusher.subscribe(room), t.roomSubs).bind('tick', (d) => {
    t.tickArrivals.push({ n: d.n, socketId: client.socketId, at: Date.now() });
    t.ticks.push(d.n);
  });
  t.presence = record(client.pusher.subscribe(presence), t.presenceSubs);
  return t;
}

/**
 * Publishes a numbered `tick` event ({ n }) to `channel` through `sdk` every `everyMs`, each
 * request awaited before the next. `published` gets { n, at (request sent), ok, status | err }
 * per request; `stop()` resolves once the loop has ended.
 */
export function publishTicks(sdk, channel, everyMs) {
  const published = [];
  let stopped = false;
  const loop = (async () => {
    for (let n = 1; !stopped; n++) {
      const at = Date.now();
      try {
        const res = await sdk.trigger(channel, 'tick', { n });
        published.push({ n, at, ok: true, status: res.status });
      } catch (e) {
        published.push({ n, at, ok: false, err: String((e && e.status) || (e && e.message) || e) });
      }
      const rest = everyMs - (Date.now() - at);
      if (rest > 0) await observe(rest);
    }
  })();
  return {
    published,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Polls an HTTP API condition (for server-side state that has no client-visible event). */
export async function pollUntil(fn, label, ms = WAIT_MS, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return last.value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${label}; last: ${safeJson(last.value)}`);
    await observe(every);
  }
}

export { PusherJS, PusherSDK };
