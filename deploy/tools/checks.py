#!/usr/bin/env python3
"""Offline checks of Herald's deployment artefacts, called by deploy/validate.sh.

    checks.py readme-keys README.md                  print the configuration keys README documents
    checks.py toml README.md FILE...                 TOML files use only those keys
    checks.py manifests README.md NAME FILE...       consistency of one rendered set of manifests
                                                     (NAME labels the output); also checks the
                                                     herald.toml inside its Secrets
    checks.py extract-toml DIR FILE...               write each Secret's herald.toml into DIR
    checks.py adapter VALUES CONFIGMAP               the two prometheus-adapter rules agree
    checks.py compose docker-compose.yml             mounted files exist, nodes consistent
    checks.py dockerfile Dockerfile .dockerignore    structure of the image build
    checks.py healthcheck Dockerfile PORT            run the image's HEALTHCHECK command here,
                                                     against a Herald admin port PORT

Schema validation is not done here (kubernetes-validate does it); these are the checks a schema
cannot make: selectors that select the pod template, ports and Secrets that are referenced but
missing, probes, the grace period against the drain window, non-root settings, and every config
key against README.md's "Configuration reference", parsed from the README itself so the check
follows the documentation.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import sys
import tomllib

import yaml

FAILURES: list[str] = []


def fail(msg: str) -> None:
    FAILURES.append(msg)
    print(f"  FAIL {msg}")


def done(what: str) -> None:
    if FAILURES:
        sys.exit(f"{what}: {len(FAILURES)} problem(s)")
    print(f"  ok   {what}")


# ---------------------------------------------------------------------------------------------
# README.md's configuration reference.

SECTION = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$")
# A key at the start of a line, possibly commented out (`# redis_url = …`); indented comment lines
# are continuations of the line above, not keys.
KEY = re.compile(r"^(?:# ?)?([a-z][a-z0-9_]*)\s*=")
# The README's way to document an alternative key in a trailing comment: `url = "…"   # or: stream = …`.
ALTERNATIVE = re.compile(r"#.*?\bor:\s*([a-z][a-z0-9_]*)\s*=")


def readme_keys(readme: str) -> dict[str, set[str]]:
    """Keys per table ("" top level, "apps", "apps.webhooks") from every ```toml block of the
    "## Configuration reference" section. Commented-out examples (`# redis_url = …`) count: the
    README documents them as keys, and so do alternatives in a trailing comment
    (`url = "…"   # or: stream = "…"`). Each block starts at the top level."""
    with open(readme) as f:
        text = f.read()
    m = re.search(r"^## Configuration reference\s*$(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        sys.exit(f"{readme}: no '## Configuration reference' section")
    blocks = re.findall(r"```toml\n(.*?)```", m.group(1), re.S)
    if not blocks:
        sys.exit(f"{readme}: no ```toml block in the configuration reference")
    keys: dict[str, set[str]] = {"": set()}
    for block in blocks:
        table = ""
        for line in block.splitlines():
            s = SECTION.match(line)
            if s and not line.lstrip().startswith("#"):
                table = s.group(1)
                keys.setdefault(table, set())
                continue
            k = KEY.match(line)
            if k:
                keys.setdefault(table, set()).add(k.group(1))
                alt = ALTERNATIVE.search(line)
                if alt:
                    keys[table].add(alt.group(1))
    if len(keys[""]) < 10 or "apps" not in keys or "id" not in keys["apps"]:
        sys.exit(f"{readme}: the configuration reference did not parse as expected: {keys}")
    return keys


def check_config(cfg: dict, keys: dict[str, set[str]], where: str) -> None:
    """Every key of a parsed herald.toml is documented. Inline tables under a documented key
    (webhook headers, filter) are the user's own data and not checked further."""

    def walk(table: dict, path: str) -> None:
        known = keys.get(path, set())
        for k, v in table.items():
            sub = f"{path}.{k}" if path else k
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                if sub not in keys:
                    fail(f"{where}: [[{sub}]] is not a table of README's configuration reference")
                    continue
                for i, item in enumerate(v):
                    walk(item, sub)
            elif k not in known:
                fail(f"{where}: key '{sub}' is not in README's configuration reference")

    walk(cfg, "")


def check_toml_text(text: str, keys, where: str) -> dict | None:
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{where}: not valid TOML: {e}")
        return None
    check_config(cfg, keys, where)
    # With an app store (app_store other than "file") the apps come from it.
    if not cfg.get("apps") and cfg.get("app_store", "file") == "file":
        fail(f"{where}: no [[apps]] and no app_store (Herald would fall back to its development app)")
    return cfg


# ---------------------------------------------------------------------------------------------
# Rendered manifests.


def load_docs(files: list[str]) -> list[dict]:
    docs = []
    for path in files:
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d:
                    d["__file"] = path
                    docs.append(d)
    return docs


def secret_data(doc: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    data.update(doc.get("stringData") or {})
    return data


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(containers, ref) -> bool:
    for c in containers:
        for p in c.get("ports") or []:
            if ref in (p.get("name"), p.get("containerPort")):
                return True
    return False


def check_manifests(readme: str, name: str, files: list[str], external: set[str]) -> None:
    keys = readme_keys(readme)
    docs = load_docs(files)
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d.get("kind", "?"), []).append(d)
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    accounts = {d["metadata"]["name"] for d in by_kind.get("ServiceAccount", [])}
    deployments = by_kind.get("Deployment", [])
    if not any(d["metadata"]["name"].startswith("herald") for d in deployments):
        fail(f"{name}: no Herald Deployment")

    def where(d):
        return f"{name}: {d['kind']}/{d['metadata']['name']}"

    for d in deployments:
        spec = d["spec"]
        tpl = spec["template"]
        labels = tpl["metadata"].get("labels", {})
        if not selects(spec["selector"].get("matchLabels", {}), labels):
            fail(f"{where(d)}: selector does not match the pod template labels")
        pod = tpl["spec"]
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            fail(f"{where(d)}: pod securityContext.runAsNonRoot is not true")
        if pod.get("serviceAccountName") and pod["serviceAccountName"] not in accounts:
            fail(f"{where(d)}: ServiceAccount {pod['serviceAccountName']} is not in the set")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            sname = (v.get("secret") or {}).get("secretName")
            if sname and sname not in secrets and sname not in external:
                fail(f"{where(d)}: volume {v['name']} mounts Secret {sname}, not in the set")
        for c in pod["containers"]:
            cw = f"{where(d)} container {c['name']}"
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem"):
                fail(f"{cw}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cw}: allowPrivilegeEscalation is not false")
            res = c.get("resources", {})
            if not res.get("requests") or not (res.get("limits") or {}).get("memory"):
                fail(f"{cw}: resources.requests and limits.memory must be set")
            for probe in ("readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p:
                    fail(f"{cw}: no {probe}")
                    continue
                port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                if port is not None and not container_port([c], port):
                    fail(f"{cw}: {probe} port {port} is not a container port")
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    s = secrets.get(ref["name"])
                    if s is None and ref["name"] not in external:
                        fail(f"{cw}: env {e['name']} reads Secret {ref['name']}, not in the set")
                    elif s is not None and ref["key"] not in secret_data(s):
                        fail(f"{cw}: env {e['name']} reads key {ref['key']} missing from "
                             f"Secret {ref['name']}")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    fail(f"{cw}: mounts undefined volume {m['name']}")
            if c["name"] == "herald":
                check_herald_container(d, c, pod, volumes, secrets, external, keys, cw)

    pods = [(d["spec"]["template"]["metadata"].get("labels", {}), d) for d in deployments]
    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector", {})
        matched = [d for labels, d in pods if selects(sel, labels)]
        if not matched:
            fail(f"{where(s)}: selector {sel} matches no Deployment's pods")
        for p in s["spec"].get("ports", []):
            target = p.get("targetPort", p.get("port"))
            for d in matched:
                if not container_port(d["spec"]["template"]["spec"]["containers"], target):
                    fail(f"{where(s)}: targetPort {target} is not a port of {where(d)}")
    for b in by_kind.get("PodDisruptionBudget", []):
        if not any(selects(b["spec"]["selector"].get("matchLabels", {}), l) for l, _ in pods):
            fail(f"{where(b)}: selector matches no Deployment's pods")
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = h["spec"]["scaleTargetRef"]
        if not any(d["metadata"]["name"] == ref["name"] for d in deployments):
            fail(f"{where(h)}: scaleTargetRef {ref['name']} is not a Deployment of the set")
        names = [m.get("pods", {}).get("metric", {}).get("name") for m in h["spec"]["metrics"]]
        if "herald_node_connections" not in names:
            fail(f"{where(h)}: does not scale on herald_node_connections")
    done(f"{name}: {len(docs)} objects consistent")


def check_herald_container(d, c, pod, volumes, secrets, external, keys, cw) -> None:
    args = c.get("args", [])
    if "--config" not in args:
        fail(f"{cw}: no --config argument")
        return
    path = args[args.index("--config") + 1]
    mount = next((m for m in c.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")),
                 None)
    if not mount:
        fail(f"{cw}: --config {path} is not under any volume mount")
        return
    vol = volumes[mount["name"]].get("secret") or {}
    fname = path[len(mount["mountPath"]) + 1 :]
    items = {i["path"]: i["key"] for i in vol.get("items", [])} or {fname: fname}
    key = items.get(fname)
    if key is None:
        fail(f"{cw}: {path} is not among the Secret volume's items")
        return
    drain = 10  # Herald's default drain_secs
    secret = secrets.get(vol.get("secretName"))
    if secret is not None:
        data = secret_data(secret)
        if key not in data:
            fail(f"{cw}: Secret {vol['secretName']} has no key {key}")
            return
        cfg = check_toml_text(data[key], keys, f"{cw} {path}")
        if cfg:
            drain = int(cfg.get("drain_secs", drain))
            for k in ("bind", "metrics_bind"):
                if k in cfg:
                    fail(f"{cw}: {path} sets {k}; the manifests assume ports 6001 and 9601")
    elif vol.get("secretName") not in external:
        fail(f"{cw}: config Secret {vol.get('secretName')} is not in the set")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if ports.get("http") != 6001 or ports.get("metrics") != 9601:
        fail(f"{cw}: ports must be http 6001 and metrics 9601 (Herald's defaults), got {ports}")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
        fail(f"{cw}: readinessProbe must GET /ready")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
        fail(f"{cw}: livenessProbe must GET /health")
    pre = (c.get("lifecycle") or {}).get("preStop") or {}
    cmd = (pre.get("exec") or {}).get("command") or []
    sleep = int(cmd[1]) if len(cmd) == 2 and cmd[0] == "sleep" else (pre.get("sleep") or {}).get(
        "seconds")
    if sleep is None:
        fail(f"{cw}: preStop must be a sleep (exec sleep N or sleep.seconds)")
        sleep = 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    # preStop, then the paced drain, then up to 5 s for sessions to close, plus margin.
    if grace < sleep + drain + 10:
        fail(f"{cw}: terminationGracePeriodSeconds {grace} < preStop {sleep} + drain_secs "
             f"{drain} + 10")
    names = {e["name"] for e in c.get("env", [])}
    tls_files = ("HERALD_REDIS_TLS_CA_FILE", "HERALD_REDIS_TLS_CERT_FILE", "HERALD_REDIS_TLS_KEY_FILE")
    # Credentials come from Secrets, never as plain values in the manifest.
    from_secrets = ("HERALD_ADMIN_TOKEN", "HERALD_APP_STORE_URL")
    if any(n.startswith("HERALD_")
           and n not in ("HERALD_REDIS_URL", "HERALD_LOG") + tls_files + from_secrets
           for n in names):
        fail(f"{cw}: unexpected HERALD_ variables {sorted(names)}")
    for e in c.get("env", []):
        if e["name"] in from_secrets:
            ref = ((e.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if "value" in e or not ref:
                fail(f"{cw}: {e['name']} must come from a Secret (valueFrom.secretKeyRef)")
            elif ref.get("name") in secrets and ref.get("key") not in secret_data(secrets[ref["name"]]):
                fail(f"{cw}: Secret {ref['name']} has no key {ref.get('key')} for {e['name']}")
    # The Redis TLS files must be where a volume is mounted.
    mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
    for e in c.get("env", []):
        if e["name"] in tls_files and not any(
                e.get("value", "").startswith(m.rstrip("/") + "/") for m in mounts):
            fail(f"{cw}: {e['name']}={e.get('value')} is not under a mounted volume {mounts}")
    if pod.get("enableServiceLinks") is not False:
        fail(f"{cw}: enableServiceLinks must be false (service links inject HERALD_* variables)")


def extract_toml(outdir: str, files: list[str]) -> None:
    n = 0
    for d in load_docs(files):
        if d.get("kind") == "Secret" and "herald.toml" in secret_data(d):
            n += 1
            path = os.path.join(outdir, f"{os.path.basename(d['__file'])}.{n}.toml")
            with open(path, "w") as f:
                f.write(secret_data(d)["herald.toml"])
            print(path)


# ---------------------------------------------------------------------------------------------
# prometheus-adapter, compose, Dockerfile.


def check_adapter(values_path: str, cm_path: str) -> None:
    with open(values_path) as f:
        values = yaml.safe_load(f)
    with open(cm_path) as f:
        cm = yaml.safe_load(f)
    a = values["rules"]["custom"]
    b = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    if a != b:
        fail(f"{values_path} and {cm_path} hold different rules")
    for rule in a:
        if "herald_node_connections" in rule["seriesQuery"]:
            if rule["name"].get("as") != "herald_node_connections":
                fail("the adapter rule must expose the metric as herald_node_connections")
            ov = rule["resources"]["overrides"]
            if ov.get("pod", {}).get("resource") != "pod":
                fail("the adapter rule must map the pod label to the pod resource")
            break
    else:
        fail("no prometheus-adapter rule for herald_node_connections")
    done("prometheus-adapter rule (values.yaml = adapter-config.yaml)")


def check_compose(path: str) -> None:
    base = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        c = yaml.safe_load(f)
    services = c["services"]
    nodes = [n for n in services if n.startswith("herald-")]
    if len(nodes) != 3:
        fail(f"{path}: expected three herald-N services, got {nodes}")
    for name, s in services.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("."):
                if not os.path.exists(os.path.join(base, src)):
                    fail(f"{path}: {name} mounts {src}, which does not exist")
    for n in nodes:
        s = services[n]
        if s.get("environment", {}).get("HERALD_REDIS_URL") != "redis://redis:6379/0":
            fail(f"{path}: {n} must use HERALD_REDIS_URL=redis://redis:6379/0")
        grace = str(s.get("stop_grace_period", "10s"))
        if not grace.endswith("s") or int(grace[:-1]) < 20:
            fail(f"{path}: {n} stop_grace_period {grace} is shorter than the drain (20 s)")
    lb = services.get("lb", {})
    cfg = next((v.split(":")[0] for v in lb.get("volumes", []) if "haproxy" in v), None)
    if cfg:
        with open(os.path.join(base, cfg)) as f:
            text = f.read()
        for n in nodes:
            if not re.search(rf"^\s*server\s+{n}\s+{n}:6001\b", text, re.M):
                fail(f"{cfg}: no `server {n} {n}:6001` line")
        if "uri /ready" not in text or "port 9601" not in text:
            fail(f"{cfg}: health checks must GET /ready on port 9601")
    else:
        fail(f"{path}: the lb service mounts no haproxy.cfg")
    done("docker-compose.yml: files, nodes, load balancer")


def check_dockerfile(path: str, ignore: str) -> None:
    with open(path) as f:
        text = f.read()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instr = [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in instr if l.upper().startswith("FROM ")]
    if len(froms) < 2:
        fail(f"{path}: expected a multi-stage build")
    if "cargo build --release --locked -p herald-server" not in text:
        fail(f"{path}: must build with cargo build --release --locked -p herald-server")
    final = instr[instr.index(froms[-1]) :]
    users = [l.split(None, 1)[1] for l in final if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail(f"{path}: the runtime stage must switch to a non-root USER")
    elif not users[-1].split(":")[0].isdigit():
        fail(f"{path}: use a numeric USER so Kubernetes can verify runAsNonRoot")
    hc = [l for l in final if l.upper().startswith("HEALTHCHECK ")]
    if not hc:
        fail(f"{path}: no HEALTHCHECK")
    else:
        cmd = hc[0][hc[0].index("CMD") + 3 :].strip()
        try:
            argv = json.loads(cmd)
            if "/dev/tcp/127.0.0.1/9601" not in " ".join(argv) and "9601" not in " ".join(argv):
                fail(f"{path}: the HEALTHCHECK does not probe port 9601")
        except json.JSONDecodeError as e:
            fail(f"{path}: HEALTHCHECK CMD is not a JSON array: {e}")
    for l in final:
        if l.upper().startswith("EXPOSE ") and set(l.split()[1:]) != {"6001", "9601"}:
            fail(f"{path}: EXPOSE should list 6001 and 9601")
    # Every COPY source of the build context must exist and pass .dockerignore (an allowlist).
    with open(ignore) as f:
        rules = [r.strip() for r in f if r.strip() and not r.startswith("#")]
    root = os.path.dirname(os.path.abspath(path))
    for l in instr:
        if l.upper().startswith("COPY ") and "--from" not in l:
            for src in shlex.split(l)[1:-1]:
                if not os.path.exists(os.path.join(root, src)):
                    fail(f"{path}: COPY source {src} does not exist")
                if not ignored_allows(rules, src.rstrip("/")):
                    fail(f"{path}: COPY source {src} is excluded by .dockerignore")
    done("Dockerfile and .dockerignore")


def run_healthcheck(path: str, port: str) -> None:
    """The HEALTHCHECK command of the runtime stage, with its port 9601 swapped for PORT."""
    import subprocess

    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    line = next(l for l in text.splitlines() if l.strip().upper().startswith("HEALTHCHECK "))
    argv = json.loads(line[line.index("CMD") + 3 :].strip())
    argv = [a.replace("9601", port) for a in argv]
    r = subprocess.run(argv, timeout=10)
    if r.returncode != 0:
        fail(f"{path}: the HEALTHCHECK command failed against a running Herald (exit {r.returncode})")
    done("Dockerfile HEALTHCHECK command against a running Herald")


def ignored_allows(rules: list[str], src: str) -> bool:
    """Docker's .dockerignore: the last matching rule wins; `!` re-includes."""
    import fnmatch

    allowed = True
    for r in rules:
        neg = r.startswith("!")
        pat = r[1:] if neg else r
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(src, pat) or src.startswith(pat + "/"):
            allowed = neg
    return allowed


# Kinds of prometheus-operator's CRDs: no Kubernetes schema knows them; checked here instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def split_crds(src: str, k8s_out: str, crd_out: str) -> int:
    """Writes the documents of `src` whose kind is a CRD to `crd_out`, the others to `k8s_out`;
    returns how many CRD documents there were."""
    docs = load_docs([src])
    for d in docs:
        d.pop("__file", None)  # load_docs' bookkeeping, not part of the object
    crds = [d for d in docs if d.get("kind") in CRD_KINDS]
    with open(k8s_out, "w") as f:
        yaml.safe_dump_all([d for d in docs if d.get("kind") not in CRD_KINDS], f)
    with open(crd_out, "w") as f:
        yaml.safe_dump_all(crds, f)
    return len(crds)


def check_crds(crd_file: str, manifests: str, rules_out: str) -> None:
    """ServiceMonitor: its selector selects the metrics Service and its port is one of that
    Service's named ports. PrometheusRule: spec.groups is written to `rules_out` for promtool."""
    crds = load_docs([crd_file])
    services = [d for d in load_docs([manifests]) if d.get("kind") == "Service"]
    for d in crds:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "ServiceMonitor":
            want = d["spec"]["selector"]["matchLabels"]
            hits = [s for s in services if selects(want, s["metadata"].get("labels", {}))]
            if len(hits) != 1:
                fail(f"{where}: selects {len(hits)} Services, want exactly the metrics one")
                continue
            ports = {p.get("name") for p in hits[0]["spec"]["ports"]}
            for e in d["spec"]["endpoints"]:
                if e.get("port") not in ports:
                    fail(f"{where}: endpoint port {e.get('port')} is not a port of {hits[0]['metadata']['name']}")
        elif d["kind"] == "PrometheusRule":
            groups = d.get("spec", {}).get("groups")
            if not groups:
                fail(f"{where}: no rule groups")
            with open(rules_out, "w") as f:
                yaml.safe_dump({"groups": groups}, f)
    done(f"{len(crds)} prometheus-operator object(s) consistent")


def main() -> None:
    cmd, *args = sys.argv[1:]
    if cmd == "readme-keys":
        for table, ks in readme_keys(args[0]).items():
            print(f"[{table or 'top level'}] {' '.join(sorted(ks))}")
    elif cmd == "toml":
        keys = readme_keys(args[0])
        for path in args[1:]:
            with open(path) as f:
                check_toml_text(f.read(), keys, path)
        done(f"{len(args) - 1} TOML file(s): keys documented in README.md")
    elif cmd == "manifests":
        external = set(filter(None, os.environ.get("EXTERNAL_SECRETS", "").split(",")))
        check_manifests(args[0], args[1], args[2:], external)
    elif cmd == "split-crds":
        print(split_crds(*args))
    elif cmd == "crds":
        check_crds(*args)
    elif cmd == "extract-toml":
        extract_toml(args[0], args[1:])
    elif cmd == "adapter":
        check_adapter(*args)
    elif cmd == "compose":
        check_compose(*args)
    elif cmd == "dockerfile":
        check_dockerfile(*args)
    elif cmd == "healthcheck":
        run_healthcheck(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
