#!/usr/bin/env bash
# Copies the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, at a pinned version of its
# Go module, into config/crd/external/prometheus-operator, so that tests validate our monitoring
# objects against the exact API a cluster with that operator serves. The module comes from the Go
# module proxy (checksummed by sum.golang.org) and is not a dependency of go.mod.
# Usage: PROMETHEUS_OPERATOR_VERSION=v0.85.0 hack/prometheus-operator-crds.sh (make manifests)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
version=${PROMETHEUS_OPERATOR_VERSION:?set PROMETHEUS_OPERATOR_VERSION, e.g. v0.85.0}
module=github.com/prometheus-operator/prometheus-operator
# Outside this module, so that go.mod is left alone.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
src=$(cd "$scratch" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z "$src" || ! -d "$src/example/prometheus-operator-crd" ]]; then
  echo "no example/prometheus-operator-crd in $module@$version" >&2
  exit 1
fi
dst=config/crd/external/prometheus-operator
mkdir -p "$dst"
rm -f "$dst"/*.yaml
for kind in servicemonitors prometheusrules; do
  install -m 0644 "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dst/"
done
