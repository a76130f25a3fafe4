#!/usr/bin/env python3
"""What the Redis backplane costs, one Redis against a Redis Cluster, in one run: for each
topology (alternating, a fresh Redis and two fresh herald nodes every run) runs
`herald-bench redis-ops` and prints the Redis commands per connect, subscribe, presence join,
publish and disconnect, publish throughput, and Redis CPU per publish.

    crates/herald-bench/redis_scale.py --runs 2 --out bench-results/redis-scale.jsonl

Topologies: `single` (one redis-server, classic pub/sub) and `cluster` (3 masters + 3
replicas, `redis+cluster://`, sharded pub/sub). Every process is started on free loopback
ports and killed by pid after its run, pass or fail.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import HERALD_TOML, ROOT, free_port, wait_port  # noqa: E402


def cluster_ports(n):
    """n distinct free ports for Redis Cluster nodes: at most 55535 (redis-server refuses more),
    each with its bus port (+10000) free too."""
    out = []
    while len(out) < n:
        p = free_port()
        if p in out or p > 55535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
        out.append(p)
    return out


class Topology:
    def __init__(self, kind):
        self.kind = kind
        self.procs = []
        self.dirs = []

    def redis(self, port, *extra):
        d = tempfile.mkdtemp(prefix="herald-bench-redis-")
        self.dirs.append(d)
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", d, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        wait_port(port, proc)
        return proc

    def start(self):
        if self.kind == "single":
            port = free_port()
            self.redis_procs = [self.redis(port)]
            self.ports = [port]
            return f"redis://127.0.0.1:{port}/"
        self.ports = cluster_ports(6)
        self.redis_procs = [
            self.redis(p, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-node-timeout", "2000")
            for p in self.ports]
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        for p in self.ports:
            while True:
                info = subprocess.run(["redis-cli", "-p", str(p), "CLUSTER", "INFO"],
                                      capture_output=True, text=True).stdout
                repl = subprocess.run(["redis-cli", "-p", str(p), "INFO", "replication"],
                                      capture_output=True, text=True).stdout
                if "cluster_state:ok" in info and ("role:master" in repl
                                                    or "master_link_status:up" in repl):
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"cluster node {p} never became healthy")
                time.sleep(0.1)
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def masters(self):
        out = []
        for p in self.ports:
            repl = subprocess.run(["redis-cli", "-p", str(p), "INFO", "replication"],
                                  capture_output=True, text=True).stdout
            if "role:master" in repl:
                out.append(p)
        return out

    def herald(self, binary, config, url):
        port, metrics = free_port(), free_port()
        proc = subprocess.Popen(
            [binary, "--config", config, "--bind", f"127.0.0.1:{port}",
             "--metrics-bind", f"127.0.0.1:{metrics}", "--redis-url", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            # Clients are placed by the bench: no rebalancing (as in compare.py).
            env={**os.environ, "HERALD_REBALANCE_TOLERANCE_PERCENT": "0"})
        self.procs.append(proc)
        wait_port(port, proc)
        # Ready: the node answers /ready once its pub/sub connection is up.
        deadline = time.time() + 30
        while time.time() < deadline:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"http://127.0.0.1:{metrics}/ready"],
                               capture_output=True, text=True).stdout
            if r == "200":
                return port, proc.pid
            time.sleep(0.1)
        raise RuntimeError("herald never became ready")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for d in self.dirs:
            subprocess.run(["rm", "-rf", d])


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--bench", default=os.path.join(ROOT, "target/release/herald-bench"))
    p.add_argument("--herald", default=os.environ.get(
        "HERALD_BIN", os.path.join(ROOT, "target/release/herald")))
    p.add_argument("--out", help="append every run's JSON line to this file")
    p.add_argument("bench_args", nargs="*", help="extra redis-ops flags (after --)")
    args = p.parse_args()
    for b in (args.bench, args.herald):
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: cargo build --release -p herald-server -p herald-bench")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write(HERALD_TOML)
    results = {"single": [], "cluster": []}
    try:
        for run in range(args.runs):
            for kind in ("single", "cluster"):
                print(f"… run {run + 1}/{args.runs}: {kind}", file=sys.stderr, flush=True)
                topo = Topology(kind)
                try:
                    url = topo.start()
                    (p1, pid1), (p2, pid2) = (topo.herald(args.herald, cfg.name, url),
                                              topo.herald(args.herald, cfg.name, url))
                    # Commands are counted on the masters (on a cluster each replica repeats
                    # the writes of its master, on its own core).
                    cmd = [args.bench, "redis-ops", "--port", str(p1), "--port2", str(p2),
                           "--server-pid", f"{pid1},{pid2}", "--label", kind,
                           "--redis", ",".join(f"redis://127.0.0.1:{p}/" for p in topo.masters()),
                           "--redis-pid", ",".join(str(r.pid) for r in topo.redis_procs),
                           *args.bench_args]
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                    if out.returncode != 0:
                        sys.exit(f"redis-ops failed on {kind}:\n{out.stderr[-3000:]}")
                    line = out.stdout.strip().splitlines()[-1]
                    results[kind].append(json.loads(line))
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(line + "\n")
                finally:
                    topo.stop()
    finally:
        os.unlink(cfg.name)

    def mean(kind, get):
        vals = [get(r) for r in results[kind] if get(r) is not None]
        return sum(vals) / len(vals) if vals else float("nan")

    phases = ["connect", "subscribe (new channel)", "subscribe (occupied channel)",
              "presence join", "publish", "disconnect"]
    rows = []
    for ph in phases:
        rows.append((f"{ph}: round trips",
                     lambda r, ph=ph: r["phases"][ph]["round_trips"]))
        rows.append((f"{ph}: calls inside scripts",
                     lambda r, ph=ph: r["phases"][ph]["script_calls"]))
        rows.append((f"{ph}: command time on the masters (µs)",
                     lambda r, ph=ph: r["phases"][ph]["usec_per_op"]))
    rows += [
            ("publishes/s (2 nodes, this machine)", lambda r: r["throughput"]["publishes_per_sec"]),
            ("Redis CPU per publish (µs, all Redis processes)", lambda r: r["throughput"]["redis_cpu_us_per_publish"]),
            ("Redis command time per publish (µs, commandstats)", lambda r: r["throughput"]["redis_command_us_per_publish"]),
            ("herald CPU per publish (µs, both nodes)", lambda r: r["throughput"]["nodes_cpu_us_per_publish"])]
    print(f"(disconnect: a connection with 2 subscriptions and 1 presence membership)")
    print(f"| | one Redis | Redis Cluster 3+3 | ratio |\n|---|---|---|---|")
    for name, get in rows:
        a, b = mean("single", get), mean("cluster", get)
        ratio = b / a if a else float("nan")
        print(f"| {name} | {a:.2f} | {b:.2f} | {ratio:.2f} |")
    for kind in ("single", "cluster"):
        for r in results[kind][:1]:
            for phase, v in r["phases"].items():
                print(f"{kind} {phase}: {v['commands']}", file=sys.stderr)


if __name__ == "__main__":
    main()
