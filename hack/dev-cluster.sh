#!/usr/bin/env bash
# Starts (up) or stops (down) the local cluster of the demo and the e2e test, everything on this
# machine and built from the Go module proxy:
#   - kwokctl (binary runtime) runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler
#     (from bin/control-plane) and kwok's controller, which plays one fake node: pods are scheduled
#     to it and become Running and Ready, Jobs' pods complete, volume claims of the kwok-volume
#     StorageClass (the default) bind. Nothing runs in the pods.
#   - our CRDs and cert-manager's; our validating webhooks pointed at https://127.0.0.1:PORT with a
#     CA of their own (hack/dev-cluster), for an operator run on this machine (hack/run-local.sh).
#   - cert-manager's certificate, approver, self-signed and CA controllers (hack/cert-manager).
#
# Environment: TENANTOPS_DEV_DIR (bin/dev) holds the kubeconfig, logs, pid files and kwokctl's
# work directory; TENANTOPS_CLUSTER (tenantops-dev) names the cluster; TENANTOPS_WEBHOOK_PORT (9443);
# TENANTOPS_AUDIT_POLICY, an audit policy file, makes the API server write an audit log
# (kwok/clusters/NAME/logs/audit.log).
# `up` is idempotent: a cluster already running is left as it is. `down` stops what `up` started.
# `tools` only builds (or finds cached) the binaries.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dev=${TENANTOPS_DEV_DIR:-$root/bin/dev}
mkdir -p "$dev"
dev=$(cd "$dev" && pwd)
cluster=${TENANTOPS_CLUSTER:-tenantops-dev}
webhook_port=${TENANTOPS_WEBHOOK_PORT:-9443}
kwok_version=${KWOK_VERSION:-v0.8.0}
cache_root=${TENANTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-operator}

export KWOK_WORKDIR="$dev/kwok"
kubeconfig="$dev/kubeconfig"
cm_pidfile="$dev/cert-manager.pid"
kwokctl="$root/bin/kwokctl-$kwok_version"
kubectl="$root/bin/control-plane/kubectl"
# kwokctl calls kubectl; ours, built with the control plane.
export PATH="$root/bin/control-plane:$PATH"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

cluster_exists() { [[ -x "$kwokctl" ]] && "$kwokctl" get clusters 2>/dev/null | grep -qx "$cluster"; }

# build_cached OUT PACKAGE: go build PACKAGE of this module into a cache keyed by go.mod, go.sum,
# the package's files and the Go version, and link OUT to it.
build_cached() {
  local out=$1 pkg=$2 key cached
  key=$(cat "$root/go.mod" "$root/go.sum" "$root/$pkg"/*.go | sha256sum | cut -c1-12)
  cached="$cache_root/hack-bin/$(go env GOVERSION)/$(basename "$pkg")-$key/$(basename "$out")"
  if [[ ! -x "$cached" ]]; then
    log "Building $pkg (cached afterwards in $(dirname "$cached"))"
    mkdir -p "$(dirname "$cached")"
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$cached.tmp" "./$pkg")
    mv "$cached.tmp" "$cached"
  fi
  ln -sfn "$cached" "$out"
}

# kwok_stages writes a kwokctl configuration file: our options and kwok's own Stage objects (node,
# pod and volume lifecycles, the "fast" set) from the pinned module.
kwok_stages() {
  local dir out=$1
  dir=$(cd "${TMPDIR:-/tmp}" && go mod download -json "sigs.k8s.io/kwok@$kwok_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d "$dir/kustomize/stage" ]] || { echo "kwok module $kwok_version not found in the module cache" >&2; return 1; }
  # Every component listens on 127.0.0.1 only (kwokctl's default is 0.0.0.0).
  cat >"$out" <<'EOF'
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
EOF
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
           volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pv-delete.yaml volume/fast/pvc-delete.yaml; do
    printf -- '---\n' >>"$out"
    cat "$dir/kustomize/stage/$f" >>"$out"
    printf '\n' >>"$out"
  done
  # A pod labelled faults.tenantops.io/fail=true fails once running instead of completing (its
  # weight wins over pod-complete's): its containers end with the exit code, reason and message of
  # its faults.tenantops.io/ annotations (1, Error, "failed (injected by a test)" by default), as a
  # crashed or killed container would. The fault-injection suite (test/faults) puts the label on a
  # backup CronJob's pod template to make its Jobs fail.
  cat >>"$out" <<'EOF'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-fail-for-tests
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["faults.tenantops.io/fail"]'
      operator: 'In'
      values:
      - 'true'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
  weight: 1
  delay:
    durationMilliseconds: 500
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $annotations := or .metadata.annotations dict }}
      {{ $exitCode := or ( index $annotations "faults.tenantops.io/exit-code" ) 1 }}
      {{ $reason := or ( index $annotations "faults.tenantops.io/reason" ) "Error" }}
      {{ $message := or ( index $annotations "faults.tenantops.io/message" ) "failed (injected by a test)" }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {{ $exitCode }}
            finishedAt: {{ $now | Quote }}
            reason: {{ $reason | Quote }}
            message: {{ $message | Quote }}
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
EOF
  install -m 0644 "$dir/kustomize/stage/volume/fast/storage-class.yaml" "$dev/kwok-storage-class.yaml"
}

# tools builds (or finds cached) everything the stack runs.
tools() {
  log "Building (or finding cached) the control plane, kwok $kwok_version, cert-manager's controllers"
  bash "$root/hack/control-plane.sh" >/dev/null
  bash "$root/hack/go-install.sh" "$kwokctl" sigs.k8s.io/kwok/cmd/kwokctl "$kwok_version"
  bash "$root/hack/go-install.sh" "$root/bin/kwok-$kwok_version" sigs.k8s.io/kwok/cmd/kwok "$kwok_version"
  build_cached "$root/bin/cert-manager-controller" hack/cert-manager
  build_cached "$root/bin/dev-cluster" hack/dev-cluster
  build_cached "$root/bin/s3-router" hack/dev-cluster/s3-router
}

# A Tenant's quota counts cert-manager Certificates. kube-controller-manager's quota controller
# learns of CRDs installed after it started only at its next discovery pass (every 30 s), and a
# quota it computed before that lacks the count until its 5-minute resync; meanwhile the API
# server refuses every Certificate in that namespace ("status unknown for quota"). So the
# cluster is ready only once a fresh quota in a scratch namespace gets the count.
quota_counts_certificates() {
  local ns=tenantops-quota-probe key='count/certificates.cert-manager.io' used=""
  "$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  for attempt in $(seq 1 60); do
    "$kubectl" -n "$ns" delete resourcequota --all --wait=false >/dev/null 2>&1 || true
    "$kubectl" -n "$ns" create quota "probe-$attempt" --hard="$key=1" >/dev/null
    sleep 2
    used=$("$kubectl" -n "$ns" get resourcequota "probe-$attempt" \
      -o jsonpath='{.status.used.count/certificates\.cert-manager\.io}' 2>/dev/null || true)
    if [[ -n "$used" ]]; then
      "$kubectl" delete namespace "$ns" --wait=false >/dev/null
      return 0
    fi
  done
  echo "kube-controller-manager's quota controller did not count $key within 2 minutes" >&2
  return 1
}

up() {
  if cluster_exists && [[ -f "$kubeconfig" ]] && alive "$cm_pidfile"; then
    log "Cluster $cluster already running; KUBECONFIG=$kubeconfig"
    return 0
  fi
  if cluster_exists || alive "$cm_pidfile"; then
    log "Cluster $cluster is half up; stopping it first"
    down
  fi
  local start=$SECONDS
  tools
  kwok_stages "$dev/kwok-stages.yaml"
  log "Tools ready ($((SECONDS - start))s)"

  local cp="$root/bin/control-plane" t=$SECONDS
  log "Starting cluster $cluster (kwokctl, binary runtime; logs: kwokctl --name $cluster logs COMPONENT)"
  if ! "$kwokctl" create cluster --name "$cluster" --runtime binary --kubeconfig "" \
      --config "$dev/kwok-stages.yaml" \
      --etcd-binary "$cp/etcd" --kube-apiserver-binary "$cp/kube-apiserver" \
      --kube-controller-manager-binary "$cp/kube-controller-manager" \
      --kube-scheduler-binary "$cp/kube-scheduler" --kwok-controller-binary "$root/bin/kwok-$kwok_version" \
      ${TENANTOPS_AUDIT_POLICY:+--kube-audit-policy "$TENANTOPS_AUDIT_POLICY"} \
      --wait 2m >"$dev/kwokctl.log" 2>&1; then
    echo "kwokctl create cluster failed; its output ($dev/kwokctl.log):" >&2
    tail -30 "$dev/kwokctl.log" >&2
    return 1
  fi
  # kwokctl's kubeconfig (cluster admin) serves the setup; a copy at $kubeconfig, made last, says
  # the cluster is ready.
  export KUBECONFIG="$KWOK_WORKDIR/clusters/$cluster/kubeconfig.yaml"
  "$kwokctl" scale node --name "$cluster" --replicas 1 >>"$dev/kwokctl.log" 2>&1
  # kwokctl's node has no ephemeral storage, and every pod asks for some (the tenants' LimitRange
  # gives containers a default, as quota counts it): give it the capacity a real node reports.
  for node in $("$kubectl" get nodes -o name); do
    "$kubectl" patch "$node" --subresource=status --type=merge \
      -p '{"status":{"capacity":{"ephemeral-storage":"200Gi"},"allocatable":{"ephemeral-storage":"200Gi"}}}' >/dev/null
  done
  "$kubectl" apply -f "$dev/kwok-storage-class.yaml" >/dev/null
  log "Cluster up with one fake node ($((SECONDS - t))s)"

  t=$SECONDS
  "$kubectl" apply --server-side --force-conflicts -f "$root/config/crd/bases" -f "$root/config/crd/external/cert-manager" >/dev/null
  "$kubectl" wait --for condition=Established --timeout 60s crd --all >/dev/null
  "$kubectl" create namespace cert-manager --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$root/bin/dev-cluster" --kubeconfig "$KUBECONFIG" --manifest "$root/config/webhook/manifests.yaml" \
    --cert-dir "$dev/webhook-certs" --port "$webhook_port" >/dev/null
  log "CRDs and webhooks (to https://127.0.0.1:$webhook_port) installed ($((SECONDS - t))s)"

  t=$SECONDS
  quota_counts_certificates || return 1
  log "kube-controller-manager's quota controller counts Certificates ($((SECONDS - t))s)"

  nohup "$root/bin/cert-manager-controller" --kubeconfig "$KUBECONFIG" >"$dev/cert-manager.log" 2>&1 &
  echo $! >"$cm_pidfile"
  sleep 1
  alive "$cm_pidfile" || { echo "cert-manager's controllers exited:" >&2; tail -20 "$dev/cert-manager.log" >&2; return 1; }
  log "cert-manager's controllers running (log: $dev/cert-manager.log)"

  cp "$KUBECONFIG" "$kubeconfig.tmp"
  mv "$kubeconfig.tmp" "$kubeconfig"
  log "Cluster $cluster ready in $((SECONDS - start))s; KUBECONFIG=$kubeconfig"
}

down() {
  if alive "$cm_pidfile"; then
    local pid
    pid=$(cat "$cm_pidfile")
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$cm_pidfile"
  if cluster_exists; then
    # --kubeconfig names the file to remove the cluster from; "" is refused, ours goes anyway.
    "$kwokctl" delete cluster --name "$cluster" --kubeconfig "$kubeconfig" >>"$dev/kwokctl.log" 2>&1 ||
      { echo "kwokctl delete cluster failed; see $dev/kwokctl.log" >&2; return 1; }
  fi
  rm -f "$kubeconfig" "$kubeconfig.tmp"
  log "Cluster $cluster stopped"
}

case "${1:-up}" in
up) up ;;
down) down ;;
tools) tools ;;
*) echo "usage: $0 up|down|tools" >&2; exit 2 ;;
esac
