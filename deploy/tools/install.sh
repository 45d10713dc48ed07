#!/usr/bin/env bash
# Install the tools deploy/check.sh needs; idempotent, cached in ~/.cache/terrawatch.
#   helm, kubeconform  built with `go install` (Go module proxy) into $BIN, one file per version
#   promtool           Debian package `prometheus` (apt-get), when not on PATH
#   Kubernetes schemas generated from api/openapi-spec/swagger.json of the k8s.io/kubernetes
#                      Go module (`go mod download`) by deploy/schemas/k8s_openapi2jsonschema.py
# Prints nothing but progress; the paths are fixed (see deploy/check.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${TERRAWATCH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrawatch}"
bin="$cache/bin"
mkdir -p "$bin"
python="${PYTHON:-python3}"

need_go() {
  command -v go >/dev/null || { echo "install.sh: the Go toolchain is required (go install)" >&2; exit 1; }
}

go_install() {  # name package version
  local name="$1" pkg="$2" version="$3" target="$bin/$1-$3"
  if [ ! -x "$target" ]; then
    need_go
    echo "install.sh: go install $pkg@$version" >&2
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS= go install "$pkg@$version")
    mv "$tmp/bin/$name" "$target"
    rm -rf "$tmp"
  fi
  ln -sfn "$name-$version" "$bin/$name"
}

go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

if ! command -v promtool >/dev/null; then
  echo "install.sh: apt-get install prometheus (for promtool)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

k8s="$cache/schemas/kubernetes-$KUBERNETES_VERSION"
if [ ! -f "$k8s/.complete" ]; then
  need_go
  echo "install.sh: Kubernetes $KUBERNETES_VERSION schemas from k8s.io/kubernetes swagger.json" >&2
  moddir="$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | "$python" -c 'import json,sys; d=json.load(sys.stdin); print(d["Dir"]) if "Dir" in d else sys.exit(d.get("Error","no Dir"))')"
  rm -rf "$k8s.tmp"
  "$python" "$root/deploy/schemas/k8s_openapi2jsonschema.py" "$moddir/api/openapi-spec/swagger.json" "$k8s.tmp" >&2
  rm -rf "$k8s" && mv "$k8s.tmp" "$k8s" && touch "$k8s/.complete"
fi
