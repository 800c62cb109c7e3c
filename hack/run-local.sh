#!/usr/bin/env bash
# Runs the operator on this machine against the cluster of KUBECONFIG, serving the webhook on the
# port and certificates hack/dev-cluster prepared. With --background it writes a pid file and a log.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dev="$root/bin/dev"
export KUBECONFIG=${KUBECONFIG:-$dev/kubeconfig}
kubectl="$root/bin/control-plane/kubectl"
"$kubectl" create namespace tenant-operator-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
args=(--operator-namespace tenant-operator-system --webhook-cert-dir "$dev/webhook-certs" --webhook-port 9443
      --metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081
      --default-issuer-name selfsigned)
if [[ "${1:-}" == "--background" ]]; then
  nohup "$root/bin/tenant-operator" "${args[@]}" >"$dev/operator.log" 2>&1 &
  echo $! >"$dev/operator.pid"
  for _ in $(seq 1 60); do
    curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && { echo "Operator running (log: $dev/operator.log)"; exit 0; }
    kill -0 "$(cat "$dev/operator.pid")" 2>/dev/null || { echo "Operator exited:"; tail -20 "$dev/operator.log"; exit 1; }
    sleep 0.5
  done
  echo "Operator did not become ready in 30s"; tail -20 "$dev/operator.log"; exit 1
fi
exec "$root/bin/tenant-operator" "${args[@]}"
