// The Python venv of the compatibility suite (tests/compat/.venv with python/requirements.txt).
// `node python/venv.mjs` prepares it (tests/run.sh does, before the suites, so its first-time pip
// install is not counted against a test's timeout); 16-python-sdk.test.mjs calls ensureVenv()
// too, so the file also runs on its own.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const VENV = path.join(HERE, '..', '.venv');
const REQUIREMENTS = path.join(HERE, 'requirements.txt');
export const VENV_PY = path.join(VENV, 'bin', 'python');
const STAMP = path.join(VENV, '.herald-requirements.sha256');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { ok: r.status === 0 && !r.error, out: `${r.stdout || ''}${r.stderr || ''}${r.error ? String(r.error) : ''}` };
}

/** Creates or reuses the venv; skipped when the installed requirements file is unchanged. */
export function ensureVenv() {
  const want = crypto.createHash('sha256').update(fs.readFileSync(REQUIREMENTS)).digest('hex');
  if (fs.existsSync(VENV_PY) && fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8').trim() === want) return;
  const hint = 'install it: sudo apt-get install -y python3-venv';
  if (!run('python3', ['--version']).ok) throw new Error(`python3 not found on PATH; ${hint}`);
  if (!fs.existsSync(VENV_PY)) {
    const v = run('python3', ['-m', 'venv', VENV]);
    if (!v.ok || !fs.existsSync(VENV_PY)) {
      fs.rmSync(VENV, { recursive: true, force: true });
      throw new Error(`\`python3 -m venv ${VENV}\` failed (python3-venv / ensurepip missing?); ${hint}\n${v.out}`);
    }
  }
  const pip = run(VENV_PY, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', REQUIREMENTS], {
    timeout: 300000,
  });
  if (!pip.ok) throw new Error(`pip install -r ${REQUIREMENTS} failed:\n${pip.out}`);
  fs.writeFileSync(STAMP, `${want}\n`);
}

/**
 * Runs `python -m unittest -v MODULE` in python/ with the venv's interpreter and `env` added to
 * this process's environment; resolves with { code, out } (stdout and stderr together) and
 * reports each test line to the node test context `t` as a diagnostic.
 */
export async function runUnittest(t, module, env) {
  const py = spawn(VENV_PY, ['-m', 'unittest', '-v', module], {
    cwd: HERE,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...env },
  });
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  py.stderr.on('data', (d) => (out += d));
  const code = await new Promise((resolve) => py.on('exit', (c, s) => resolve(c ?? s)));
  for (const l of out.split('\n')) if (/ \.\.\. /.test(l) || /^Ran /.test(l)) t.diagnostic(l);
  return { code, out };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureVenv();
  console.log(`python venv ready: ${VENV}`);
}
