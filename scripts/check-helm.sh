#!/usr/bin/env bash
# The Helm chart (deploy/helm/kuzet) checked offline, as CI does:
#
#   scripts/check-helm.sh            get helm if missing, then lint, render, validate
#   scripts/check-helm.sh --install  only get helm (make test; its tests then run this)
#   scripts/check-helm.sh --sync     copy the rules and dashboards into the chart
#
# helm is built from its Go module into .tools/bin (Go's module proxy is the one
# download source CI has for it; 1.5-4 min the first time on 2 cores, with Go's caches
# empty). Then, with the default values and with every optional part on
# (ci/all-on-values.yaml): `helm lint --strict`; `helm template`; the core objects
# (Deployment, Service, ConfigMaps) against the Kubernetes schemas that the
# kubernetes-validate package ships (tools venv, no download); the PrometheusRule's
# groups with `promtool check rules`. The other custom resources (PodMonitor,
# ScaledObject, TriggerAuthentication) have no schema offline: their required fields
# are checked by tests/deploy/test_helm.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

HELM_VERSION=v3.22.0
# The Kubernetes version the chart is rendered for and validated against: the
# client-go helm 3.22 is built with (v0.37, so 1.37, as helm's own Makefile derives
# it), the newest schemas kubernetes-validate 1.37.0 ships.
KUBE_MAJOR=1
KUBE_MINOR=37
KUBE_VERSION=$KUBE_MAJOR.$KUBE_MINOR.0
TOOLS=$root/.tools
HELM=$TOOLS/bin/helm
VALIDATE=$root/.venv-tools/bin/kubernetes-validate
TOOLS_PY=$root/.venv-tools/bin/python
CHART=deploy/helm/kuzet
# Kinds without a schema offline (CRDs); any other kind kubernetes-validate cannot
# find is an error (a misspelt apiVersion).
CRD_KINDS='PodMonitor|PrometheusRule|ScaledObject|TriggerAuthentication'
# Helm's cache, config and data stay in .tools, never in $HOME.
export HELM_CACHE_HOME=$TOOLS/helm/cache HELM_CONFIG_HOME=$TOOLS/helm/config \
  HELM_DATA_HOME=$TOOLS/helm/data

fail() { echo "check-helm: $*" >&2; exit 1; }

install_helm() {
  if [ -x "$HELM" ] && [ "$("$HELM" version --template '{{.Version}}')" = "$HELM_VERSION" ]; then
    return
  fi
  local go
  go=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$go" ] || fail "Go not found (on PATH or /usr/local/go/bin/go): install Go 1.26 or newer (helm 3.22 needs it)"
  echo "== building helm $HELM_VERSION from its Go module into .tools/bin"
  local start=$SECONDS
  # The flags of helm's own release build (its Makefile): the version, and the
  # Kubernetes version it renders for by default and lints deprecations against.
  local pkg=helm.sh/helm/v3
  GOBIN=$TOOLS/bin GOTOOLCHAIN=local CGO_ENABLED=0 "$go" install -trimpath -ldflags "-s -w \
    -X $pkg/internal/version.version=$HELM_VERSION \
    -X $pkg/pkg/chartutil.k8sVersionMajor=$KUBE_MAJOR -X $pkg/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR \
    -X $pkg/pkg/lint/rules.k8sVersionMajor=$KUBE_MAJOR -X $pkg/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR" \
    "$pkg/cmd/helm@$HELM_VERSION"
  echo "   built in $((SECONDS - start)) s: $("$HELM" version --short)"
}

# The chart's copies of files Helm cannot read from outside it.
sync_copies() {
  cp deploy/prometheus/rules/kuzet.rules.yml "$CHART/files/kuzet.rules.yml"
  rm -f "$CHART"/files/dashboards/*.json
  cp deploy/grafana/dashboards/*.json "$CHART/files/dashboards/"
  echo "copied the rules and dashboards into $CHART/files"
}

check_copies() {
  cmp -s deploy/prometheus/rules/kuzet.rules.yml "$CHART/files/kuzet.rules.yml" &&
    diff -r -q deploy/grafana/dashboards "$CHART/files/dashboards" >/dev/null ||
    fail "$CHART/files differs from deploy/prometheus/rules or deploy/grafana/dashboards: run scripts/check-helm.sh --sync"
}

check_chart() {
  [ -x "$VALIDATE" ] || fail "kubernetes-validate not found in .venv-tools: run make setup"
  command -v promtool >/dev/null || fail "promtool not found: run make setup (scripts/install-prometheus.sh)"
  check_copies
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  local case args
  for case in default all-on; do
    args=()
    [ "$case" = all-on ] && args=(-f "$CHART/ci/all-on-values.yaml")
    echo "== helm chart, $case values: lint, template, validate"
    "$HELM" lint --strict --quiet "$CHART" "${args[@]}"
    "$HELM" template kuzet "$CHART" --kube-version "$KUBE_VERSION" "${args[@]}" >"$out/$case.yaml"
    if ! "$VALIDATE" --strict --quiet -k "$KUBE_VERSION" "$out/$case.yaml" >"$out/$case.log" 2>&1; then
      cat "$out/$case.log" >&2
      fail "rendered with $case values, an object does not match its Kubernetes schema"
    fi
    if grep -v '^INFO' "$out/$case.log" | grep -Ev "for kind ($CRD_KINDS) with api version"; then
      fail "rendered with $case values, an object has no Kubernetes schema (above)"
    fi
  done
  # The PrometheusRule's spec is a Prometheus rules file.
  "$TOOLS_PY" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
assert len(docs) == 1, f"{len(docs)} PrometheusRules rendered, expected 1"
yaml.safe_dump(docs[0]["spec"], open(sys.argv[2], "w"))
' "$out/all-on.yaml" "$out/rules.yml"
  promtool check rules "$out/rules.yml"
}

case "${1:-}" in
  --install) install_helm ;;
  --sync) sync_copies ;;
  "")
    install_helm
    check_chart
    ;;
  *) fail "unknown option $1 (--install, --sync, or none)" ;;
esac
