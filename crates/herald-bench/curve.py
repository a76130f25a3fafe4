#!/usr/bin/env python3
"""Cost curves: how Herald's costs change with the number of connections on a node and the
number of subscribers on a channel, beside the floor (`herald-bench floor`, the least work the
same stack does) at every point.

    crates/herald-bench/curve.py --runs 2 --out bench-results/curve.jsonl

Two sweeps, every point run on every server alternately (A B A B), every server fresh:
- *connections per node* (`--connections`, default 1000,2000,5000,10000,19000):
  `conns --connections N --channels N` (each connection subscribed to its own channel, held idle):
  memory per idle connection, server CPU per connect + subscribe, connects per second, connect p99.
- *subscribers per channel* (`--subscribers`, default 100,1000,5000,10000,19000): `fanout` with
  that many subscribers on one channel at a rate that keeps the deliveries per second constant
  (`--deliveries`, default 40000/s: 100 subscribers × 400 events/s … 19000 × 2/s): CPU per
  delivery (user and system), p50 / p99, loss. The subscribers are also the node's connections,
  so this is CPU per delivery against connections per node as well.

This machine allows 20 000 open files per process: 19 000 connections leave room for the
server's own files and the bench's publishers (the bench and the server are separate processes,
each holding one end of every connection).
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (next to this file)


def ints(text):
    return [int(x) for x in text.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("servers", nargs="*", default=["herald", "floor"],
                   help="servers to run at every point (default: herald floor); the last is "
                        "the one the others are divided by")
    p.add_argument("--runs", type=int, default=2, help="runs per server and point (default 2)")
    p.add_argument("--connections", type=ints, default=ints("1000,2000,5000,10000,19000"))
    p.add_argument("--subscribers", type=ints, default=ints("100,1000,5000,10000,19000"))
    p.add_argument("--deliveries", type=int, default=40000,
                   help="deliveries per second each fan-out point aims at (default 40000)")
    p.add_argument("--seconds", type=int, default=10, help="fan-out seconds per run (default 10)")
    p.add_argument("--only", choices=["connections", "subscribers"],
                   help="run one sweep only")
    p.add_argument("--bench", default=os.path.join(compare.ROOT, "target/release/herald-bench"))
    p.add_argument("--peers-dir", default=os.path.join(compare.ROOT, "..", "shared", "peers"))
    p.add_argument("--out", help="append every run's JSON line to this file")
    args = p.parse_args()
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} is missing: cargo build --release -p herald-bench")
    if max(args.connections + args.subscribers) > 19000:
        sys.exit("at most 19000 connections: the open-file limit is 20 000 per process")

    points = []  # (sweep, x, scenario)
    if args.only in (None, "connections"):
        for n in args.connections:
            points.append(("connections", n, ["conns", "--connections", str(n), "--channels",
                                              str(n), "--settle-secs", "2"]))
    if args.only in (None, "subscribers"):
        for s in args.subscribers:
            rate = max(1, round(args.deliveries / s))
            points.append(("subscribers", s, ["fanout", "--subscribers", str(s), "--rate",
                                              str(rate), "--seconds", str(args.seconds)]))
    results = {}
    for sweep, x, scenario in points:
        for run in range(args.runs):
            for name in args.servers:
                print(f"… {sweep} {x}, run {run + 1}/{args.runs}: {name}", file=sys.stderr,
                      flush=True)
                srv = compare.server(name, args.peers_dir, args.bench)
                try:
                    line = compare.run_one(srv, False, args.bench,
                                           scenario + ["--deadline-secs", "240"])
                except subprocess.CalledProcessError as e:
                    sys.exit(f"{name} failed at {sweep} {x}:\n{e.stdout}\n{e.stderr}")
                line["sweep"] = sweep
                results.setdefault((sweep, x, name), []).append(line)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(line) + "\n")

    def mean(sweep, x, name, f):
        vals = [f(l) for l in results.get((sweep, x, name), [])]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else float("nan")

    ref = args.servers[-1]
    figures = {
        "connections": [
            ("bytes/conn", lambda l: l.get("bytes_per_idle_connection")),
            ("CPU µs/conn", lambda l: l.get("server_cpu_us_per_connection")),
            ("conns/s", lambda l: l["connections"] / l["seconds"]),
            ("p99 ms", lambda l: l.get("connect_p99_ms")),
            ("failed", lambda l: l.get("failures")),
        ],
        "subscribers": [
            ("CPU µs/deliv", lambda l: l.get("server_cpu_us_per_delivery")),
            ("user µs", lambda l: l.get("server_user_us_per_delivery")),
            ("sys µs", lambda l: l.get("server_system_us_per_delivery")),
            ("p50 ms", lambda l: l["latency_ms"]["p50"]),
            ("p99 ms", lambda l: l["latency_ms"]["p99"]),
            ("lost", lambda l: l.get("lost")),
        ],
    }
    for sweep in ("connections", "subscribers"):
        xs = sorted({x for (s, x, _) in results if s == sweep})
        if not xs:
            continue
        print(f"\n{sweep} per {'node' if sweep == 'connections' else 'channel'}:")
        head = f"{'':>7}"
        for label, _ in figures[sweep]:
            for name in args.servers:
                head += f" {label + ' ' + name:>22}"
            head += f" {label + ' ratio':>20}"
        print(head)
        for x in xs:
            row = f"{x:>7}"
            for _, f in figures[sweep]:
                vals = {name: mean(sweep, x, name, f) for name in args.servers}
                for name in args.servers:
                    row += f" {vals[name]:>22.4g}"
                first, last = vals[args.servers[0]], vals[ref]
                row += f" {first / last if last else float('nan'):>20.2f}"
            print(row)


if __name__ == "__main__":
    main()
