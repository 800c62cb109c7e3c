#!/usr/bin/env bash
# Runs the operator (bin/tenant-operator, from make build) on this machine against the cluster of
# KUBECONFIG, serving the webhook on the port and with the certificate hack/dev-cluster.sh prepared,
# with the selfsigned ClusterIssuer as the default issuer. With --background it writes a pid file
# and a log to the dev directory and returns once the operator is ready.
#
# Environment: TENANTOPS_DEV_DIR (bin/dev), TENANTOPS_WEBHOOK_PORT (9443), TENANTOPS_PROBE_PORT
# (8081), TENANTOPS_METRICS_PORT (8080).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dev=${TENANTOPS_DEV_DIR:-$root/bin/dev}
webhook_port=${TENANTOPS_WEBHOOK_PORT:-9443}
probe_port=${TENANTOPS_PROBE_PORT:-8081}
metrics_port=${TENANTOPS_METRICS_PORT:-8080}
export KUBECONFIG=${KUBECONFIG:-$dev/kubeconfig}
kubectl="$root/bin/control-plane/kubectl"
[[ -f "$dev/webhook-certs/tls.crt" ]] || { echo "No webhook certificate in $dev/webhook-certs: run make dev-cluster first" >&2; exit 1; }
"$kubectl" create namespace tenant-operator-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
args=(--operator-namespace tenant-operator-system --webhook-cert-dir "$dev/webhook-certs" --webhook-port "$webhook_port"
      --metrics-bind-address "127.0.0.1:$metrics_port" --health-probe-bind-address "127.0.0.1:$probe_port"
      --default-issuer-name selfsigned
      # Outside the cluster the databases' in-cluster names do not resolve: probe URLs only.
      --no-database-probes)
# make demo's stand-in tenant application serves with a CA of its own.
[[ -f "$dev/demo-app/ca.crt" ]] && args+=(--probe-ca-file "$dev/demo-app/ca.crt")
if [[ "${1:-}" == "--background" ]]; then
  pidfile="$dev/operator.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 60); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
  fi
  nohup "$root/bin/tenant-operator" "${args[@]}" >"$dev/operator.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$probe_port/readyz" >/dev/null 2>&1 && { echo "Operator running (log: $dev/operator.log)"; exit 0; }
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "Operator exited:"; tail -20 "$dev/operator.log"; exit 1; }
    sleep 0.5
  done
  echo "Operator did not become ready in 30s"; tail -20 "$dev/operator.log"; exit 1
fi
exec "$root/bin/tenant-operator" "${args[@]}"
