#!/usr/bin/env python3
"""`helm lint` of helm/herald with Helm's own engine, through the helm-sdkpy wheel (Python
bindings that bundle Helm v4's Go library; no helm binary, no cluster needed for lint).

    helm_lint.py CHART [VALUES_FILE]... [--expect-fail VALUES_FILE]...

Lints the chart with its default values, then once per values file (merged over values.yaml in
a temporary copy of the chart, since the bindings' lint takes only a chart path). Exits non-zero
if Helm reports an error: a template that Go's template engine or Sprig rejects, rendered output
that is not YAML, a bad Chart.yaml, values failing values.schema.json.

In lint mode Helm does not stop at the chart's own `fail` calls; it logs them ("funcMap fail").
For --expect-fail files that log must appear (the guard fires under Helm's engine too), and for
the others it must not.

Limitation: the bindings do not pass Helm's error texts through (each message is a severity and
a file); run deploy/tools/helm_render.py on the same values for a readable error, or real
`helm lint` where Helm is installed.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import sys
import tempfile

import yaml

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def lint(path: str, log_path: str) -> tuple[list[tuple[int, str]], str]:
    """Runs the lint with file descriptor 2 (where the Go library logs) sent to log_path."""
    import helm_sdkpy

    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            config = helm_sdkpy.Configuration()
            result = asyncio.run(helm_sdkpy.Lint(config).run(path))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    with open(log_path) as f:
        logged = f.read()
    messages = [(m.get("Severity", 0), m.get("Path", "?")) for m in result.get("Messages") or []]
    return messages, logged


def main() -> None:
    args = sys.argv[1:]
    chart = args.pop(0)
    values_files, expect_fail = [], set()
    while args:
        a = args.pop(0)
        if a == "--expect-fail":
            a = args.pop(0)
            expect_fail.add(a)
        values_files.append(a)
    chart = os.path.abspath(chart)
    with open(os.path.join(chart, "values.yaml")) as f:
        defaults = yaml.safe_load(f) or {}
    errors = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HELM_CACHE_HOME", os.path.join(tmp, "cache"))
        os.environ.setdefault("HELM_CONFIG_HOME", os.path.join(tmp, "config"))
        os.environ.setdefault("HELM_DATA_HOME", os.path.join(tmp, "data"))
        for name in ["default values", *values_files]:
            target = chart
            if name != "default values":
                with open(name) as f:
                    merged = deep_merge(defaults, yaml.safe_load(f))
                target = os.path.join(tmp, "chart-" + os.path.basename(name).split(".")[0],
                                      os.path.basename(chart))
                shutil.copytree(chart, target)
                with open(os.path.join(target, "values.yaml"), "w") as f:
                    yaml.safe_dump(merged, f, sort_keys=False)
            messages, logged = lint(target, os.path.join(tmp, "helm.log"))
            bad = [(s, p) for s, p in messages if s >= 3]
            for s, p in messages:
                if s >= 2:
                    print(f"    {SEVERITY.get(s, s)} {p}")
            fails = [l for l in logged.splitlines() if "funcMap fail" in l]
            if bad:
                errors += 1
                print(f"  FAIL helm lint ({name}): Helm reports errors in "
                      f"{', '.join(p for _, p in bad)}")
            elif name in expect_fail and not fails:
                errors += 1
                print(f"  FAIL helm lint ({name}): the chart's fail guard did not fire")
            elif name in expect_fail:
                print(f"  ok   helm lint ({name}): the guard fires: {fails[0].split('message=')[-1]}")
            elif fails:
                errors += 1
                print(f"  FAIL helm lint ({name}): the chart calls fail: {fails[0]}")
            else:
                print(f"  ok   helm lint ({name}): Helm's engine renders the chart")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
