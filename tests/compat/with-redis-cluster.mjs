// `npm run test:redis-cluster`: starts one Redis Cluster (3 masters, 3 replicas), runs every
// compatibility test file against 2 herald nodes on it (HERALD_COMPAT_CLUSTER=2,
// HERALD_COMPAT_REDIS=cluster; each file under its own key prefix), then stops the cluster's
// processes by pid, pass or fail. Sharing one cluster keeps the run short: starting one takes
// seconds.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startRedisCluster } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const files = fs
  .readdirSync(HERE)
  .filter((f) => f.endsWith('.test.mjs'))
  .sort()
  .map((f) => path.join(HERE, f));

const cluster = await startRedisCluster();
console.log(`# Redis Cluster on ports ${cluster.ports.join(', ')}`);
let code = 1;
try {
  const child = spawn(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-timeout=30000', ...files],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        HERALD_COMPAT_CLUSTER: '2',
        HERALD_COMPAT_REDIS: 'cluster',
        HERALD_COMPAT_REDIS_URL: cluster.url,
      },
    },
  );
  code = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
} finally {
  await cluster.stop();
}
process.exit(code);
