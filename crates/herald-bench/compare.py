#!/usr/bin/env python3
"""Run one herald-bench scenario against two or more servers alternately (A B A B …, a fresh
server for every run) and print each figure's mean per server and its ratio to the first.

    crates/herald-bench/compare.py herald soketi sockudo --runs 2 -- fanout --subscribers 1000 --rate 100
    crates/herald-bench/compare.py herald sockudo --cluster -- fanout --subscribers 1000 --rate 100

A server is `herald` (target/release/herald, or $HERALD_BIN), `herald@PATH` (another herald
binary, such as an earlier commit's build, for before/after figures), `floor` (the reference
server, `herald-bench floor`: the least work a fan-out takes on Herald's stack, one process, no
cluster), `soketi` or `sockudo` (started by ../shared/peers, which must have installed them). Every server gets the same app (app-1 /
app-key / app-secret), listens on 127.0.0.1 and is stopped after its run, pass or fail. With
--cluster every server runs as two nodes sharing a fresh redis-server; the bench gets --port and
--port2 (clients split across the nodes) and both pids. The last stdout line of every run is the
bench's JSON; all of them are written to --out (JSON lines) too.
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
    def __init__(self, name="herald", binary=None):
        self.name = name
        self.binary = binary or os.environ.get(
            "HERALD_BIN", os.path.join(ROOT, "target/release/herald"))
        self.procs = []
        self.redis = None

    def node(self, port, redis_url=None):
        binary = self.binary
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release -p herald-server")
        cmd = [binary, "--config", self.config.name, "--bind", f"127.0.0.1:{port}",
               "--metrics-bind", f"127.0.0.1:{free_port()}"]
        if redis_url:
            cmd += ["--redis-url", redis_url]
        # A benchmark places its clients itself: rebalancing (README "Scaling out") would move
        # some between nodes mid-run and measure that instead. Turned off through the
        # environment, which builds from before the key ignore (they refuse unknown file keys).
        env = {**os.environ, "HERALD_REBALANCE_TOLERANCE_PERCENT": "0"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        self.procs.append(proc)
        wait_port(port, proc)
        return proc.pid

    def write_config(self):
        self.config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        self.config.write(HERALD_TOML)
        self.config.close()

    def start(self, port):
        self.write_config()
        return [self.node(port)]

    def start_cluster(self, port, port2):
        self.write_config()
        rport = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(rport, self.redis)
        url = f"redis://127.0.0.1:{rport}"
        return [self.node(port, url), self.node(port2, url)]

    def stop(self):
        for proc in self.procs + ([self.redis] if self.redis else []):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        os.unlink(self.config.name)


class Floor:
    """The reference server (`herald-bench floor`): the least work a fan-out takes on this stack."""

    def __init__(self, bench):
        self.name = "floor"
        self.bench = bench
        self.proc = None

    def start(self, port):
        self.proc = subprocess.Popen([self.bench, "floor", "--bind", f"127.0.0.1:{port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(port, self.proc)
        return [self.proc.pid]

    def start_cluster(self, port, port2):
        sys.exit("the floor is one process: it has no cluster mode (leave it out of --cluster)")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Peer:
    def __init__(self, name, peers_dir):
        self.name = name
        self.peers = peers_dir
        self.home = os.environ.get("PEERS", os.path.expanduser("~/herald-peers"))

    def pid(self, pid_name):
        with open(os.path.join(self.home, "pids", f"{pid_name}.pid")) as f:
            return int(f.read().strip())

    def start(self, port):
        script = os.path.join(self.peers, f"{self.name}-single.sh")
        subprocess.run([script, str(port)], check=True, stdout=subprocess.DEVNULL)
        self.id = f"{self.name}-single-{port}"
        return [self.pid(self.id)]

    def start_cluster(self, port, port2):
        # The peers' cluster scripts use fixed ports (6001, 6002, Redis 6390).
        script = os.path.join(self.peers, f"{self.name}-cluster.sh")
        self.id = f"{self.name}-cluster"
        subprocess.run([script], check=True, stdout=subprocess.DEVNULL)
        return [self.pid(f"{self.id}-6001"), self.pid(f"{self.id}-6002")]

    def stop(self):
        subprocess.run([os.path.join(self.peers, "stop.sh"), self.id], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def server(name, peers_dir, bench):
    if name == "floor":
        return Floor(bench)
    if name == "herald":
        return Herald()
    if name.startswith("herald@"):
        # Another build of Herald (an earlier commit, for before/after figures).
        return Herald(name, os.path.abspath(name.split("@", 1)[1]))
    if name in ("soketi", "sockudo"):
        return Peer(name, peers_dir)
    sys.exit(f"unknown server {name!r}: herald, herald@PATH, floor, soketi or sockudo")


def run_one(srv, cluster, bench, scenario):
    """Starts `srv` (two nodes with `cluster`), runs the bench scenario against it, stops it
    (pass or fail) and returns the run's JSON line with `server` and `cluster` added."""
    try:
        if cluster:
            ports = ((free_port(), free_port()) if isinstance(srv, Herald) else (6001, 6002))
            pids = srv.start_cluster(*ports)
            target = ["--port", str(ports[0]), "--port2", str(ports[1])]
        else:
            port = free_port()
            pids = srv.start(port)
            target = ["--port", str(port)]
        pid_arg = ",".join(str(p) for p in pids)
        out = subprocess.run([bench] + scenario + target + ["--server-pid", pid_arg],
                             check=True, capture_output=True, text=True).stdout
    finally:
        srv.stop()
    print(out, end="", file=sys.stderr)
    line = json.loads(out.strip().splitlines()[-1])
    line["server"] = srv.name
    line["cluster"] = cluster
    return line


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
    p.add_argument("servers", nargs="+", metavar="server",
                   help="herald, herald@PATH, floor, soketi or sockudo; two or more, the first "
                        "is the reference")
    p.add_argument("--runs", type=int, default=2, help="runs per server (default 2)")
    p.add_argument("--cluster", action="store_true",
                   help="two nodes per server on a shared redis-server (clients split with --port2)")
    p.add_argument("--bench", default=os.path.join(ROOT, "target/release/herald-bench"))
    p.add_argument("--peers-dir", default=os.path.join(ROOT, "..", "shared", "peers"))
    p.add_argument("--out", help="append every run's JSON line to this file")
    p.add_argument("--", dest="scenario", metavar="SCENARIO",
                   help="then the herald-bench scenario and its flags (everything after --)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    scenario = argv[cut + 1:]
    if not scenario:
        sys.exit("give the scenario after --, e.g. -- fanout --subscribers 1000")
    if len(args.servers) < 2:
        sys.exit("name two or more servers to compare")
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} is missing: cargo build --release -p herald-bench")
    results = {name: [] for name in args.servers}
    for run in range(args.runs):
        for name in args.servers:
            srv = server(name, args.peers_dir, args.bench)
            print(f"… run {run + 1}/{args.runs}: {name}{' cluster' if args.cluster else ''}",
                  file=sys.stderr, flush=True)
            line = run_one(srv, args.cluster, args.bench, scenario)
            results[name].append(line)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(line) + "\n")
    mean = {}
    for name, lines in results.items():
        keys = set().union(*(numbers(l).keys() for l in lines))
        mean[name] = {k: sum(numbers(l).get(k, 0.0) for l in lines) / len(lines) for k in keys}
    ref = args.servers[0]
    keys = sorted(set().union(*(set(m) for m in mean.values())))
    width = max(len(k) for k in keys)
    head = f"{'figure':<{width}}" + "".join(f"  {n:>14}" for n in args.servers)
    head += "".join(f"  {n + ' / ' + ref:>18}" for n in args.servers[1:])
    print(head)
    for k in keys:
        vals = [mean[n].get(k) for n in args.servers]
        row = f"{k:<{width}}" + "".join(f"  {'-' if v is None else f'{v:.4g}':>14}" for v in vals)
        for v in vals[1:]:
            ratio = f"{v / vals[0]:.2f}" if vals[0] and v is not None else "-"
            row += f"  {ratio:>18}"
        print(row)


if __name__ == "__main__":
    main()
