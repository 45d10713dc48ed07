#!/usr/bin/env bash
# Validate everything under deploy/, helm/ and alerts/ with the real tools:
#   promtool check rules / test rules / check config, Grafana dashboard JSON,
#   compose file against the compose-spec schema, helm lint, helm template | kubeconform.
# Installs what it needs (deploy/tools/install.sh, cached). Runs every step, prints a
# summary, exits non-zero if any step failed.
#   Usage: bash deploy/check.sh [--verify-crd-schemas]
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=tools/versions.env
source deploy/tools/versions.env
cache="${TERRAWATCH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrawatch}"
if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
export PYTHON="$python"

start=$(date +%s)
PYTHON="$python" bash deploy/tools/install.sh || { echo "check.sh: tool installation failed" >&2; exit 1; }
helm="$cache/bin/helm"
kubeconform="$cache/bin/kubeconform"
k8s_schemas="$cache/schemas/kubernetes-$KUBERNETES_VERSION"
kube_version="${KUBERNETES_VERSION#v}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

failed=()
step() {  # name command...
  local name="$1"; shift
  local t0; t0=$(date +%s)
  if "$@" >"$tmp/out" 2>&1; then
    printf 'ok    %-40s %3ss\n' "$name" "$(( $(date +%s) - t0 ))"
  else
    printf 'FAIL  %-40s %3ss\n' "$name" "$(( $(date +%s) - t0 ))"
    sed 's/^/      /' "$tmp/out" | tail -n 40
    failed+=("$name")
  fi
}

chart_copies_match() {
  cmp alerts/prometheus/terrawatch-rules.yaml helm/terrawatch/files/terrawatch-rules.yaml &&
  cmp deploy/grafana/terrawatch.json helm/terrawatch/files/terrawatch.json ||
  { echo "chart copies differ: run deploy/tools/sync-chart-files.sh"; return 1; }
}

dashboard() {
  "$python" deploy/tools/check_dashboard.py deploy/grafana/terrawatch.json docs/metrics.md \
    --promtool-rules "$tmp/dashboard-rules.yaml" &&
  promtool check rules "$tmp/dashboard-rules.yaml"
}

compose_schema() {
  "$python" -m pytest -q -p no:cacheprovider tests/unit/test_compose_schema.py
}

values_files() { echo ""; for f in helm/terrawatch/ci/*.yaml; do echo "$f"; done; }

helm_lint() {
  local f
  while read -r f; do
    "$helm" lint --strict --kube-version "$kube_version" helm/terrawatch ${f:+-f "$f"} || return 1
  done < <(values_files)
}

kubeconform_all() {
  local f
  while read -r f; do
    echo "# values: ${f:-defaults}"
    "$helm" template tw helm/terrawatch --namespace terrawatch --kube-version "$kube_version" ${f:+-f "$f"} \
      > "$tmp/rendered.yaml" || return 1
    "$kubeconform" -strict -summary \
      -schema-location "$k8s_schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
      -schema-location "deploy/schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
      "$tmp/rendered.yaml" || return 1
  done < <(values_files)
}

crd_schemas_current() {
  bash deploy/schemas/generate-crd-schemas.sh "$tmp/crds" >/dev/null &&
  diff -r -x SOURCES.md deploy/schemas/crds "$tmp/crds"
}

step "chart copies of rules and dashboard" chart_copies_match
step "promtool check rules" promtool check rules alerts/prometheus/*.yaml
step "promtool test rules" promtool test rules alerts/prometheus/tests/*.yaml
step "promtool check config (compose)" promtool check config --syntax-only deploy/prometheus/prometheus.yml
step "grafana dashboard" dashboard
step "compose schema (compose-spec)" compose_schema
step "helm lint" helm_lint
step "helm template | kubeconform -strict" kubeconform_all
if [ "${1:-}" = "--verify-crd-schemas" ]; then
  step "CRD schemas match upstream" crd_schemas_current
fi

echo "check.sh: $(( $(date +%s) - start ))s total"
if [ ${#failed[@]} -gt 0 ]; then
  echo "check.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check.sh: all deployment checks passed"
