#!/usr/bin/env bash
# Copies cert-manager's CRDs, at the version go.mod pins, into config/crd/external so that tests,
# the dev cluster and the demo install exactly the API our Certificate objects are built against.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
src=$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
dst=config/crd/external/cert-manager
mkdir -p "$dst"
rm -f "$dst"/*.yaml
for f in "$src"/deploy/crds/*.yaml; do
  install -m 0644 "$f" "$dst/$(basename "$f")"
done
