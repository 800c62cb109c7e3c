#!/usr/bin/env bash
# make demo: a local control plane, the operator, the sample policies and tenants, and their status.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dev="$root/bin/dev"
export KUBECONFIG="$dev/kubeconfig"
kubectl="$root/bin/control-plane/kubectl"

step() { printf '\n==> %s\n' "$*"; }

step "Starting the local control plane (built from Go modules on first use; about 10 minutes once)"
make --no-print-directory dev-cluster
step "Building and starting the operator"
make --no-print-directory build
if [[ -f "$dev/operator.pid" ]] && kill -0 "$(cat "$dev/operator.pid")" 2>/dev/null; then kill "$(cat "$dev/operator.pid")"; sleep 1; fi
bash hack/run-local.sh --background
step "Applying the demo Secrets, the sample policies and tenants"
"$kubectl" apply --server-side -f config/samples/demo/prerequisites.yaml
"$kubectl" apply --server-side -k config/samples
step "Waiting for the operator to report on every tenant"
for _ in $(seq 1 60); do
  missing=$("$kubectl" get tenants -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}' | grep -c '=$' || true)
  [[ "$missing" == 0 ]] && break
  sleep 1
done
step "Status"
"$kubectl" get tenants,backuppolicies,retentionpolicies
echo
"$kubectl" get tenants -o custom-columns='TENANT:.metadata.name,NAMESPACE:.status.namespace,CONDITIONS:.status.conditions[*].type,STATUS:.status.conditions[*].status'
cat <<MSG

Look further:
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe tenant acme
  $kubectl get all,networkpolicies,certificates -n tenant-acme
  tail -f $dev/operator.log
Stop everything:
  make demo-down
MSG
