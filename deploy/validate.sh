#!/usr/bin/env bash
# Offline validation of Herald's deployment artefacts: Dockerfile, docker-compose.yml, the
# Kubernetes manifests in deploy/ and the Helm chart in helm/herald. No container engine, cluster
# or network service is needed; Python packages go to venvs under /tmp (override with
# HERALD_DEPLOY_VENV, HERALD_HELM_VENV), Debian packages are installed only when missing.
#
# What is checked:
#   1. Kubernetes manifests: `kubectl kustomize` renders deploy/base and deploy/overlays/* (without
#      kubectl: each manifest file is checked as it is, kustomization.yaml excluded, and the
#      kustomize-generated Secret is not); every object is validated against the Kubernetes
#      OpenAPI schemas of 1.25 (the oldest we claim) and of the newest version
#      kubernetes-validate knows, in strict mode (unknown fields are errors); then
#      deploy/tools/checks.py checks what a schema cannot: selectors select the pod template,
#      Service target ports and probe ports exist, referenced Secrets and keys exist, non-root
#      and read-only root filesystem, resources, preStop + drain_secs + 10 s within the grace
#      period, /ready and /health probes. The prometheus-adapter rule: values file and ConfigMap
#      agree, the ConfigMap is schema-valid.
#   2. Helm chart: deploy/tools/helm_render.py (a documented subset of Helm's template language)
#      renders the default values and each helm/herald/ci/*.yaml, checks the values against
#      values.schema.json, and the output goes through the same schema and consistency checks as
#      in 1; values that must be refused (no Redis with several replicas, a grace period shorter
#      than the drain) must make the chart fail. When a Python >= 3.12 is available, the real Helm
#      engine (Helm v4's Go library in the helm-sdkpy wheel) lints the chart with the same values
#      sets and must agree: it renders them without error and its `fail` guards fire for the
#      refused ones.
#   3. docker-compose.yml: `docker-compose config -q` (the Debian package docker-compose is
#      installed when missing and apt-get works), `haproxy -c` on deploy/compose/haproxy.cfg
#      (Debian package haproxy, likewise), and checks.py: mounted files exist, three nodes on one
#      Redis, stop_grace_period covers the drain, the load balancer checks /ready on 9601. The
#      Dockerfile: multi-stage, the cargo command, a numeric non-root USER, a JSON HEALTHCHECK,
#      EXPOSE, COPY sources that exist and pass .dockerignore.
#   4. Configuration keys: every key of deploy/**/*.toml and of each herald.toml the chart
#      renders is one that README.md's "Configuration reference" documents (parsed from the README
#      on every run).
#   5. When a herald binary at least as new as the server's sources is in target/ (or $HERALD_BIN),
#      each of those configuration files is loaded by Herald itself (it must start; with an
#      unreachable Redis it stays up, not ready), and the Dockerfile's HEALTHCHECK command is run
#      against it.
#   6. deploy/monitoring: `promtool check rules` and `promtool test rules` (Debian package
#      prometheus, installed when missing) on the alerting rules, and `promtool check rules` on
#      the chart's rendered PrometheusRule (prometheus-operator kinds have no Kubernetes schema:
#      section 2 splits them off and checks.py checks the ServiceMonitor selects the metrics
#      Service's port); the chart's files/ copies equal deploy/monitoring's; the Grafana dashboard
#      parses and every panel has expressions (that each metric name exists in a live node's
#      /metrics is `cargo test monitoring`).
#
# What is not checked here: that the image builds and runs (no container engine: the image's
# binary is the one CI builds with cargo, the base images are pulled only by users), that the
# objects are accepted by a real API server (admission, quotas, CRDs), that prometheus-adapter
# serves the metric, HAProxy's runtime behaviour, and chart features beyond the values sets in
# helm/herald/ci/. Without Python >= 3.12 the chart is checked only through helm_render.py.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${HERALD_DEPLOY_VENV:-/tmp/herald-deploy-venv}
HELM_VENV=${HERALD_HELM_VENV:-/tmp/herald-helm-venv}
TMP=$(mktemp -d)
HERALD_PID=
cleanup() {
    if [ -n "$HERALD_PID" ]; then kill -KILL "$HERALD_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
SKIPPED=()
section() { echo "== deploy: $*"; }
skip() { echo "  SKIPPED $*"; SKIPPED+=("$*"); }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }

# A Python 3.11+ (tomllib) for the venv with kubernetes-validate, PyYAML and jsonschema.
python_at_least() { "$1" -c "import sys; sys.exit(sys.version_info < (3, $2))" 2>/dev/null; }
find_python() {
    local minor=$1 c
    for c in python3 python3.13 python3.12 python3.11 "$HOME"/.pyenv/versions/3.1[1-9]*/bin/python3; do
        if command -v "$c" >/dev/null 2>&1 && python_at_least "$c" "$minor"; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

section "tools"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || ! "$VENV/bin/python" -c 'import yaml, jsonschema' 2>/dev/null; then
    PY311=$(find_python 11) || { echo "error: Python 3.11 or newer is needed" >&2; exit 1; }
    echo "  creating $VENV with kubernetes-validate (Python: $PY311)"
    "$PY311" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check kubernetes-validate pyyaml jsonschema
fi
PY="$VENV/bin/python"
CHECKS=("$PY" deploy/tools/checks.py)
K8S_VERSIONS=(1.25.0 "")  # "" = the newest version kubernetes-validate knows
validate_k8s() {
    local v
    for v in "${K8S_VERSIONS[@]}"; do
        "$VENV/bin/kubernetes-validate" --strict --quiet ${v:+-k "$v"} "$@"
    done
    echo "  ok   schema: $* (Kubernetes ${K8S_VERSIONS[0]} and $("$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -o '[0-9.]*$' || echo newest))"
}

# ---------------------------------------------------------------------------------------------
section "1. Kubernetes manifests (kustomize)"
TOML_FILES=()
while IFS= read -r f; do TOML_FILES+=("$f"); done < <(find deploy -name '*.toml' | sort)
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    for dir in deploy/base deploy/overlays/*/; do
        dir=${dir%/}
        out="$TMP/kustomize-$(echo "$dir" | tr / -).yaml"
        kubectl kustomize "$dir" >"$out"
        echo "  ok   kubectl kustomize $dir ($(grep -c '^kind:' "$out") objects)"
        validate_k8s "$out"
        "${CHECKS[@]}" manifests README.md "$dir" "$out"
        "${CHECKS[@]}" extract-toml "$TMP" "$out" >/dev/null
    done
else
    skip "kubectl is not installed: kustomize output not rendered; validating each manifest file as it is"
    while IFS= read -r f; do
        validate_k8s "$f"
    done < <(find deploy/base deploy/overlays -name '*.yaml' ! -name kustomization.yaml | sort)
fi
validate_k8s deploy/prometheus-adapter/adapter-config.yaml
"${CHECKS[@]}" adapter deploy/prometheus-adapter/values.yaml deploy/prometheus-adapter/adapter-config.yaml

# ---------------------------------------------------------------------------------------------
section "2. Helm chart (helm/herald)"
CHART=helm/herald
render() { "$PY" deploy/tools/helm_render.py "$CHART" "$@"; }
VALUES_SETS=(default "$CHART"/ci/*.yaml)
for set in "${VALUES_SETS[@]}"; do
    args=()
    [ "$set" = default ] || args=(-f "$set")
    name=$(basename "$set" .yaml)
    out="$TMP/helm-$name.yaml"
    render "${args[@]}" >"$out"
    render "${args[@]}" --notes >"$TMP/notes-$name.txt"
    echo "  ok   rendered $CHART with $set values ($(grep -c '^kind:' "$out") objects, NOTES.txt $(wc -l <"$TMP/notes-$name.txt") lines)"
    # prometheus-operator's kinds (monitoring.*) have no Kubernetes schema: split off, checked
    # by checks.py here and their rules by promtool in section 6.
    crds=$("${CHECKS[@]}" split-crds "$out" "$out.k8s" "$TMP/crds-$name.yaml")
    if [ "$crds" -gt 0 ]; then
        "${CHECKS[@]}" crds "$TMP/crds-$name.yaml" "$out.k8s" "$TMP/rendered-rules-$name.yaml"
    fi
    out="$out.k8s"
    validate_k8s "$out"
    external=""
    if [ "$name" = existing-secrets-values ]; then
        # That values set names Secrets the user creates.
        external=$("$PY" -c 'import sys, yaml; v = yaml.safe_load(open(sys.argv[1])); print(",".join([v["existingSecret"], v["redis"]["existingSecret"], v["redis"]["tls"]["existingSecret"]]))' "$set")
    elif [ "$name" = sql-store-values ]; then
        external=$("$PY" -c 'import sys, yaml; v = yaml.safe_load(open(sys.argv[1])); print(",".join([v["admin"]["existingSecret"], v["appStore"]["existingSecret"]]))' "$set")
    fi
    EXTERNAL_SECRETS=$external "${CHECKS[@]}" manifests README.md "helm $name" "$out"
    "${CHECKS[@]}" extract-toml "$TMP" "$out" >/dev/null
done
# Values the chart must refuse.
cat >"$TMP/refuse-no-redis.yaml" <<'EOF'
redis:
  url: ""
EOF
cat >"$TMP/refuse-short-grace.yaml" <<'EOF'
terminationGracePeriodSeconds: 15
EOF
cat >"$TMP/refuse-unknown-value.yaml" <<'EOF'
replicas: 3
EOF
cat >"$TMP/refuse-ca-without-secret.yaml" <<'EOF'
existingSecret: herald-config
redis:
  tls:
    ca: "-----BEGIN CERTIFICATE-----"
EOF
for bad in "$TMP"/refuse-*.yaml; do
    if render -f "$bad" >/dev/null 2>"$TMP/refused.txt"; then
        echo "  FAIL the chart accepted $(basename "$bad"):" && cat "$bad" && exit 1
    fi
    echo "  ok   refused $(basename "$bad" .yaml): $(cut -c1-110 "$TMP/refused.txt")"
done
# The real Helm engine, when a Python for the helm-sdkpy wheel (3.12+) is around.
if PY312=$(find_python 12); then
    if [ ! -x "$HELM_VENV/bin/python" ] || ! "$HELM_VENV/bin/python" -c 'import helm_sdkpy, yaml' 2>/dev/null; then
        echo "  creating $HELM_VENV with helm-sdkpy (Helm's Go library; about 50 MB)"
        rm -rf "$HELM_VENV"
        if ! { "$PY312" -m venv "$HELM_VENV" \
            && "$HELM_VENV/bin/pip" install -q --disable-pip-version-check helm-sdkpy pyyaml; } >"$TMP/helm-pip.log" 2>&1; then
            tail -5 "$TMP/helm-pip.log"
            rm -rf "$HELM_VENV"
        fi
    fi
    if [ -x "$HELM_VENV/bin/python" ]; then
        HOME="$TMP" "$HELM_VENV/bin/python" deploy/tools/helm_lint.py "$CHART" "$CHART"/ci/*.yaml \
            --expect-fail "$TMP/refuse-no-redis.yaml" --expect-fail "$TMP/refuse-short-grace.yaml" \
            --expect-fail "$TMP/refuse-ca-without-secret.yaml"
        # Unknown values: Helm's schema validation must refuse them (an error, not a guard).
        if HOME="$TMP" "$HELM_VENV/bin/python" deploy/tools/helm_lint.py "$CHART" "$TMP/refuse-unknown-value.yaml" >/dev/null 2>&1; then
            echo "  FAIL helm lint accepted an unknown value (values.schema.json not applied?)"; exit 1
        fi
        echo "  ok   helm lint refuses refuse-unknown-value (values.schema.json)"
    else
        skip "helm-sdkpy could not be installed: the chart was not linted by Helm's own engine"
    fi
else
    skip "no Python 3.12+: the chart was not linted by Helm's own engine (helm-sdkpy needs 3.12)"
fi

# ---------------------------------------------------------------------------------------------
section "3. docker-compose.yml and the Dockerfile"
need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)   # promtool, for section 6
if [ ${#need_apt[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "  installing ${need_apt[*]} (Debian packages, without the recommended Docker engine)"
        apt_install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; }
        if ! { apt_install "${need_apt[@]}" || { as_root apt-get update -q && apt_install "${need_apt[@]}"; }; } \
            >"$TMP/apt.log" 2>&1; then
            echo "  apt-get could not install ${need_apt[*]}:"; tail -3 "$TMP/apt.log"
        fi
    else
        echo "  apt-get is not available to install ${need_apt[*]}"
    fi
fi
if command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f docker-compose.yml config -q
    echo "  ok   docker-compose config -q ($(docker-compose version --short 2>/dev/null || echo '?'))"
else
    skip "docker-compose is not installed (Debian: apt-get install docker-compose): docker-compose.yml was not checked by Compose"
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ -x "$HAPROXY" ]; then
    # The node names resolve only inside Compose's network; init-addr none lets the check pass.
    "$HAPROXY" -c -q -f deploy/compose/haproxy.cfg
    echo "  ok   haproxy -c deploy/compose/haproxy.cfg ($("$HAPROXY" -v | head -1 | cut -d' ' -f1-3))"
else
    skip "haproxy is not installed (Debian: apt-get install haproxy): haproxy.cfg was not checked"
fi
"${CHECKS[@]}" compose docker-compose.yml
"${CHECKS[@]}" dockerfile Dockerfile .dockerignore
# Debian's prometheus package starts a server; only its promtool is wanted here.
if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------------------------------------
section "4. configuration keys against README.md"
RENDERED_TOML=()
while IFS= read -r f; do RENDERED_TOML+=("$f"); done < <(find "$TMP" -maxdepth 1 -name '*.toml' | sort)
"${CHECKS[@]}" toml README.md "${TOML_FILES[@]}" "${RENDERED_TOML[@]}"

# ---------------------------------------------------------------------------------------------
section "5. the configuration files loaded by Herald itself"
HERALD=""
for b in "${HERALD_BIN:-}" target/release/herald target/debug/herald; do
    [ -n "$b" ] && [ -x "$b" ] || continue
    # A binary older than the server's sources could judge today's files by yesterday's rules.
    if [ -z "$(find crates/herald-server/src crates/herald-core/src -name '*.rs' -newer "$b" | head -1)" ]; then
        HERALD=$b
        break
    fi
done
if [ -z "$HERALD" ]; then
    skip "no herald binary newer than the sources in target/: configuration files not loaded by Herald (cargo build -p herald-server, then rerun)"
else
    first=1
    for f in "${TOML_FILES[@]}" "${RENDERED_TOML[@]}"; do
        log="$TMP/herald.log"
        # An unreachable Redis (discard port): Herald must start anyway and wait, not ready. A
        # SQL app store's URL comes from a Secret in the manifests: an unreachable one here.
        store_env=()
        kind=$(sed -n 's/^app_store = "\(postgres\|mysql\)"$/\1/p' "$f")
        [ -z "$kind" ] || store_env=("HERALD_APP_STORE_URL=$kind://herald:pw@127.0.0.1:9/apps")
        env "${store_env[@]}" HERALD_REDIS_URL=redis://127.0.0.1:9/0 "$HERALD" --config "$f" --bind 127.0.0.1:0 \
            --metrics-bind 127.0.0.1:0 >"$log" 2>&1 &
        HERALD_PID=$!
        port=""
        for _ in $(seq 100); do
            if ! kill -0 "$HERALD_PID" 2>/dev/null; then break; fi
            port=$(grep -ao 'metrics and health on http://127\.0\.0\.1:[0-9]*' "$log" | grep -o '[0-9]*$' | head -1 || true)
            [ -n "$port" ] && break
            sleep 0.1
        done
        if [ -z "$port" ]; then
            echo "  FAIL $HERALD --config $f did not start:"
            sed 's/^/    /' "$log"
            exit 1
        fi
        if [ "$first" = 1 ]; then
            "${CHECKS[@]}" healthcheck Dockerfile "$port"
            first=0
        fi
        kill -TERM "$HERALD_PID"
        for _ in $(seq 200); do kill -0 "$HERALD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$HERALD_PID" 2>/dev/null || true
        wait "$HERALD_PID" 2>/dev/null || true
        HERALD_PID=
        echo "  ok   herald accepts ${f#"$TMP"/}"
    done
fi

# ---------------------------------------------------------------------------------------------
section "6. monitoring: the alerting rules and the dashboard (deploy/monitoring)"
if command -v promtool >/dev/null 2>&1; then
    promtool check rules deploy/monitoring/alerts.yaml >"$TMP/promtool.log" 2>&1 \
        || { cat "$TMP/promtool.log"; echo "  FAIL promtool check rules"; exit 1; }
    echo "  ok   promtool check rules deploy/monitoring/alerts.yaml ($(grep -o '[0-9]* rules found' "$TMP/promtool.log"))"
    (cd deploy/monitoring && promtool test rules alerts.test.yaml) >"$TMP/promtool.log" 2>&1 \
        || { cat "$TMP/promtool.log"; echo "  FAIL promtool test rules"; exit 1; }
    echo "  ok   promtool test rules deploy/monitoring/alerts.test.yaml (every alert fires on its unit test)"
else
    skip "promtool is not installed (Debian: apt-get install prometheus): the alerting rules were not checked"
fi
for rendered in "$TMP"/rendered-rules-*.yaml; do
    [ -e "$rendered" ] || continue
    if command -v promtool >/dev/null 2>&1; then
        promtool check rules "$rendered" >"$TMP/promtool.log" 2>&1 \
            || { cat "$TMP/promtool.log"; echo "  FAIL promtool check rules (the chart's PrometheusRule)"; exit 1; }
        echo "  ok   promtool check rules: the chart's PrometheusRule ($(basename "$rendered"))"
    fi
done
# The chart ships copies (Helm reads only files inside the chart): they must not drift.
for f in alerts.yaml grafana-dashboard.json; do
    cmp -s "deploy/monitoring/$f" "helm/herald/files/$f" \
        || { echo "  FAIL helm/herald/files/$f differs from deploy/monitoring/$f: copy it over"; exit 1; }
done
echo "  ok   helm/herald/files/ holds the same alerts and dashboard as deploy/monitoring/"
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"] and all("expr" in t for p in d["panels"] for t in p.get("targets", [])), "panels without expressions"' deploy/monitoring/grafana-dashboard.json
echo "  ok   deploy/monitoring/grafana-dashboard.json is a dashboard with expressions (metric names: cargo test monitoring)"

echo
if [ ${#SKIPPED[@]} -gt 0 ]; then
    echo "deploy artefacts valid; skipped ${#SKIPPED[@]} check(s):"
    printf '  - %s\n' "${SKIPPED[@]}"
    # CI (HERALD_DEPLOY_STRICT=1) runs every check: a skipped one fails it.
    if [ "${HERALD_DEPLOY_STRICT:-0}" = 1 ]; then
        echo "error: HERALD_DEPLOY_STRICT=1 and checks were skipped" >&2
        exit 1
    fi
else
    echo "deploy artefacts valid; nothing skipped"
fi
