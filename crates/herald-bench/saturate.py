#!/usr/bin/env python3
"""The cluster path: the highest publish rate Herald sustains as one node and as two nodes on one
redis-server, on the same fan-out, and the latency of both at every rate below that.

    crates/herald-bench/saturate.py --rates 25,50,100,150,200 -- --subscribers 1000 --seconds 10
    crates/herald-bench/saturate.py --rates 100,200,400,800 -- --subscribers 1000 --channels 10

Every rate runs `herald-bench fanout --rate R` plus the flags after `--`, single node and
cluster alternately (A B A B), `--runs` times each, every server fresh (compare.py starts
them; in the cluster the subscribers are split over both nodes and every publish goes to the
first, so each event crosses Redis). A rate is *sustained* when every run of it delivered
everything (no loss, no duplicates, no publish errors), published at least 97 % of the rate
asked and kept the end-to-end p99 under --p99-ms. A setup stops climbing after its first rate
that is not sustained. The table gives both setups' p50 / p99 and the cluster's p50 over the
single node's at every rate, and each setup's saturation rate (the highest sustained).
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (next to this file)


def sustained(line, rate, p99_ms):
    return (line.get("lost", 1) == 0 and line.get("duplicates", 1) == 0
            and line.get("publish_errors", 1) == 0
            and line.get("achieved_rate", 0) >= 0.97 * rate
            and line["latency_ms"]["p99"] < p99_ms)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", required=True,
                   help="publish rates to try, ascending, comma separated (events/s)")
    p.add_argument("--runs", type=int, default=2, help="runs per setup and rate (default 2)")
    p.add_argument("--p99-ms", type=float, default=50.0,
                   help="end-to-end p99 a sustained rate stays under (default 50)")
    p.add_argument("--server", default="herald",
                   help="herald or herald@PATH (another build; default herald)")
    p.add_argument("--bench", default=os.path.join(compare.ROOT, "target/release/herald-bench"))
    p.add_argument("--out", help="append every run's JSON line to this file")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    fanout = argv[cut + 1:]
    if any(f == "--rate" or f.startswith("--rate=") for f in fanout):
        sys.exit("give the rates with --rates, not --rate after --")
    rates = [int(r) for r in args.rates.split(",")]
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} is missing: cargo build --release -p herald-bench")
    setups = {"single": False, "cluster": True}
    climbing = dict.fromkeys(setups, True)
    table = {}  # (setup, rate) -> [lines]
    for rate in rates:
        for run in range(args.runs):
            for setup, cluster in setups.items():
                if not climbing[setup]:
                    continue
                print(f"… {rate}/s run {run + 1}/{args.runs}: {setup}", file=sys.stderr, flush=True)
                srv = compare.server(args.server, None, args.bench)
                scenario = ["fanout", "--rate", str(rate), "--deadline-secs", "120"] + fanout
                try:
                    line = compare.run_one(srv, cluster, args.bench, scenario)
                except subprocess.CalledProcessError as e:
                    print(e.stdout or "", e.stderr or "", file=sys.stderr)
                    line = {"scenario": "fanout", "rate": rate, "failed": True,
                            "latency_ms": {"p50": float("nan"), "p99": float("nan")}}
                    line["server"], line["cluster"] = srv.name, cluster
                line["sustained"] = sustained(line, rate, args.p99_ms)
                table.setdefault((setup, rate), []).append(line)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(line) + "\n")
        for setup in setups:
            runs = table.get((setup, rate))
            if runs and not all(l["sustained"] for l in runs):
                climbing[setup] = False
        if not any(climbing.values()):
            break

    def mean(lines, f):
        vals = [f(l) for l in lines]
        return sum(vals) / len(vals)

    print(f"{'rate':>6} {'setup':>8} {'p50 ms':>8} {'p99 ms':>8} {'lost':>8} "
          f"{'published/s':>12} {'CPU µs/deliv':>13} {'sustained':>10} {'p50 / single':>13}")
    saturation = {}
    for rate in rates:
        single = table.get(("single", rate))
        for setup in setups:
            lines = table.get((setup, rate))
            if not lines:
                continue
            p50 = mean(lines, lambda l: l["latency_ms"]["p50"])
            ok = all(l["sustained"] for l in lines)
            if ok and setup not in saturation.get("stopped", set()):
                saturation[setup] = rate
            else:
                saturation.setdefault("stopped", set()).add(setup)
            ratio = ""
            if setup == "cluster" and single:
                ratio = f"{p50 / mean(single, lambda l: l['latency_ms']['p50']):.2f}"
            print(f"{rate:>6} {setup:>8} {p50:>8.2f} "
                  f"{mean(lines, lambda l: l['latency_ms']['p99']):>8.2f} "
                  f"{mean(lines, lambda l: l.get('lost', float('nan'))):>8.0f} "
                  f"{mean(lines, lambda l: l.get('achieved_rate', 0)):>12.1f} "
                  f"{mean(lines, lambda l: l.get('server_cpu_us_per_delivery') or float('nan')):>13.2f} "
                  f"{'yes' if ok else 'no':>10} {ratio:>13}")
    for setup in setups:
        got = saturation.get(setup)
        print(f"saturation ({setup}): " + (f"{got} events/s sustained" if got else
                                           "not even the lowest rate was sustained"))


if __name__ == "__main__":
    main()
