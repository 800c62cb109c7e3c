#!/usr/bin/env bash
# Copies cert-manager's CRDs and the Gateway API's, at the versions go.mod pins, into
# config/crd/external so that tests, the dev cluster and the demo install exactly the APIs our
# Certificate, HTTPRoute and ReferenceGrant objects are built against. Of the Gateway API, only
# the standard channel's kinds a tenant route touches: GatewayClass, Gateway, HTTPRoute,
# GRPCRoute and ReferenceGrant.
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

src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)
dst=config/crd/external/gateway-api
mkdir -p "$dst"
rm -f "$dst"/*.yaml
for kind in gatewayclasses gateways httproutes grpcroutes referencegrants; do
  install -m 0644 "$src/config/crd/standard/gateway.networking.k8s.io_$kind.yaml" "$dst/gateway.networking.k8s.io_$kind.yaml"
done
