#!/usr/bin/env python3
"""Run one herald-bench scenario against two servers alternately (A B A B …, a fresh server for
every run) and print each figure's mean per server and the ratio B / A.

    crates/herald-bench/compare.py herald soketi --runs 2 -- fanout --subscribers 1000 --rate 100

A server is `herald` (target/release/herald, or $HERALD_BIN), `soketi` or `sockudo` (started by
../shared/peers, which must have installed them). Every server gets the same app (app-1 /
app-key / app-secret), listens on 127.0.0.1 and is stopped after its run, pass or fail. The last
stdout line of every run is the bench's JSON; all of them are written to --out (JSON lines) too.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HERALD_TOML = """
[[apps]]
id = "app-1"
key = "app-key"
secret = "app-secret"
client_events = true
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, secs=60):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {secs} s")


class Herald:
    name = "herald"

    def start(self, port):
        binary = os.environ.get("HERALD_BIN", os.path.join(ROOT, "target/release/herald"))
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release -p herald-server")
        self.config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        self.config.write(HERALD_TOML)
        self.config.close()
        self.proc = subprocess.Popen(
            [binary, "--config", self.config.name, "--bind", f"127.0.0.1:{port}",
             "--metrics-bind", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(port, self.proc)
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.unlink(self.config.name)


class Peer:
    def __init__(self, name, peers_dir):
        self.name = name
        self.peers = peers_dir
        self.home = os.environ.get("PEERS", os.path.expanduser("~/herald-peers"))

    def start(self, port):
        script = os.path.join(self.peers, f"{self.name}-single.sh")
        subprocess.run([script, str(port)], check=True, stdout=subprocess.DEVNULL)
        self.id = f"{self.name}-single-{port}"
        with open(os.path.join(self.home, "pids", f"{self.id}.pid")) as f:
            return int(f.read().strip())

    def stop(self):
        subprocess.run([os.path.join(self.peers, "stop.sh"), self.id], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def server(name, peers_dir):
    if name == "herald":
        return Herald()
    if name in ("soketi", "sockudo"):
        return Peer(name, peers_dir)
    sys.exit(f"unknown server {name!r}: herald, soketi or sockudo")


def numbers(obj, prefix=""):
    """Flattens the numeric fields of a bench JSON line."""
    out = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[key] = float(v)
        elif isinstance(v, dict):
            out.update(numbers(v, key + "."))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--runs", type=int, default=2, help="runs per server (default 2)")
    p.add_argument("--bench", default=os.path.join(ROOT, "target/release/herald-bench"))
    p.add_argument("--peers-dir", default=os.path.join(ROOT, "..", "shared", "peers"))
    p.add_argument("--out", help="append every run's JSON line to this file")
    p.add_argument("scenario", nargs=argparse.REMAINDER,
                   help="-- then the herald-bench scenario and its flags")
    args = p.parse_args()
    scenario = [a for a in args.scenario if a != "--"]
    if not scenario:
        sys.exit("give the scenario after --, e.g. -- fanout --subscribers 1000")
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} is missing: cargo build --release -p herald-bench")
    results = {args.a: [], args.b: []}
    for run in range(args.runs):
        for name in (args.a, args.b):
            srv = server(name, args.peers_dir)
            port = free_port()
            print(f"… run {run + 1}/{args.runs}: {name} on {port}", file=sys.stderr, flush=True)
            try:
                pid = srv.start(port)
                out = subprocess.run(
                    [args.bench] + scenario + ["--port", str(port), "--server-pid", str(pid)],
                    check=True, capture_output=True, text=True).stdout
            finally:
                srv.stop()
            print(out, end="", file=sys.stderr)
            line = json.loads(out.strip().splitlines()[-1])
            line["server"] = name
            results[name].append(line)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(line) + "\n")
    mean = {}
    for name, lines in results.items():
        keys = set().union(*(numbers(l).keys() for l in lines))
        mean[name] = {k: sum(numbers(l).get(k, 0.0) for l in lines) / len(lines) for k in keys}
    keys = sorted(set(mean[args.a]) | set(mean[args.b]))
    width = max(len(k) for k in keys)
    print(f"{'figure':<{width}}  {args.a:>14}  {args.b:>14}  {args.b + ' / ' + args.a:>16}")
    for k in keys:
        va, vb = mean[args.a].get(k), mean[args.b].get(k)
        ratio = f"{vb / va:.2f}" if va and vb is not None else "-"
        fa = "-" if va is None else f"{va:.4g}"
        fb = "-" if vb is None else f"{vb:.4g}"
        print(f"{k:<{width}}  {fa:>14}  {fb:>14}  {ratio:>16}")


if __name__ == "__main__":
    main()
