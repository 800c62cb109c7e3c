#!/usr/bin/env bash
# make demo: the local cluster (hack/dev-cluster.sh: control plane, kube-controller-manager, a kwok
# node, cert-manager's controllers), the backup storage the sample BackupPolicy names, the
# operator, the sample policies and tenants, their status.
# make demo-down (hack/demo.sh down): stop all of it. Both are idempotent.
#
# The sample BackupPolicy keeps its hot bucket in eu-west-1 and its cold one in eu-central-1, both at
# 127.0.0.1:9000, with the credentials of config/samples/demo/prerequisites.yaml: a versitygw per
# bucket (each serves one region and one key pair) behind hack/dev-cluster/s3-router on port 9000.
# The backup jobs' pods are kwok's and run nothing, so the buckets stay empty: the tenants report
# their first backups as pending.
#
# Environment: DEMO_TIMEOUT, seconds to wait for the tenants to be Ready (180).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dev=${TENANTOPS_DEV_DIR:-$root/bin/dev}
export KUBECONFIG="$dev/kubeconfig"
kubectl="$root/bin/control-plane/kubectl"
timeout=${DEMO_TIMEOUT:-180}
versitygw_version=v1.8.0

step() { printf '\n==> %s\n' "$*"; }

# stop NAME: stop the process of $dev/NAME.pid, if running.
stop() {
  local pidfile="$dev/$1.pid" pid
  if [[ -f "$pidfile" ]] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
}

# start NAME COMMAND...: run COMMAND in the background with its pid in $dev/NAME.pid and its
# output in $dev/NAME.log.
start() {
  local name=$1; shift
  nohup "$@" >"$dev/$name.log" 2>&1 &
  echo $! >"$dev/$name.pid"
}

# start_storage starts the S3 servers of the sample BackupPolicy: bucket, region, access key, secret.
start_storage() {
  local pids=0 name bucket region access secret port
  for name in s3-hot s3-cold s3-router; do [[ -f "$dev/$name.pid" ]] && kill -0 "$(cat "$dev/$name.pid")" 2>/dev/null && pids=$((pids + 1)); done
  if ((pids == 3)); then echo "Backup storage already running on 127.0.0.1:9000"; return; fi
  for name in s3-hot s3-cold s3-router; do stop "$name"; done
  if curl -s -o /dev/null --max-time 1 http://127.0.0.1:9000/; then
    echo "Port 9000 is in use: the sample BackupPolicy's storage must listen there; stop what holds it" >&2
    return 1
  fi
  bash hack/go-install.sh "$root/bin/versitygw" github.com/versity/versitygw/cmd/versitygw "$versitygw_version"
  bash hack/dev-cluster.sh tools 2>/dev/null
  local routes=()
  port=19000
  while read -r name bucket region access secret; do
    port=$((port + 1))
    mkdir -p "$dev/$name/$bucket"
    start "$name" "$root/bin/versitygw" --access "$access" --secret "$secret" --region "$region" \
      --port "127.0.0.1:$port" --quiet posix "$dev/$name"
    routes+=(--route "$bucket=http://127.0.0.1:$port")
  done <<'BUCKETS'
s3-hot backups-hot eu-west-1 demo-hot demo-hot-secret
s3-cold backups-cold eu-central-1 demo-cold demo-cold-secret
BUCKETS
  start s3-router "$root/bin/s3-router" --listen 127.0.0.1:9000 "${routes[@]}"
  for _ in $(seq 1 40); do
    curl -s -o /dev/null --max-time 1 http://127.0.0.1:9000/backups-hot/ && curl -s -o /dev/null --max-time 1 http://127.0.0.1:9000/backups-cold/ && break
    sleep 0.25
  done
  echo "Backup storage on 127.0.0.1:9000: backups-hot (eu-west-1), backups-cold (eu-central-1); data in $dev/s3-*"
}

# start_demo_app serves the stand-in for initech's application (hack/demo-app) on
# 127.0.0.1:18443, writing its CA to $dev/demo-app/ca.crt for the operator's probes.
start_demo_app() {
  stop demo-app
  mkdir -p "$dev/demo-app"
  go build -o "$dev/demo-app/demo-app" ./hack/demo-app
  rm -f "$dev/demo-app/ca.crt"
  start demo-app "$dev/demo-app/demo-app" --addr 127.0.0.1:18443 --ca-file "$dev/demo-app/ca.crt"
  for _ in $(seq 1 50); do [[ -s "$dev/demo-app/ca.crt" ]] && return; sleep 0.2; done
  echo "The stand-in application did not start: $(cat "$dev/demo-app.log")" >&2
  return 1
}

stop_demo_app() { stop demo-app; }

if [[ "${1:-up}" == down ]]; then
  stop operator
  echo "Operator stopped"
  stop_demo_app
  for name in s3-router s3-hot s3-cold; do stop "$name"; done
  echo "Backup storage stopped"
  bash hack/dev-cluster.sh down
  exit 0
fi

start=$SECONDS
step "Starting the local cluster (the first run builds the control plane from Go modules, 10-20 minutes; cached afterwards)"
bash hack/dev-cluster.sh up

step "Starting the backup storage of the sample BackupPolicy"
start_storage

step "Starting a stand-in for a tenant's application (https://127.0.0.1:18443/, CA in $dev/demo-app)"
start_demo_app

step "Building and starting the operator (webhook on 127.0.0.1:9443, default issuer: ClusterIssuer selfsigned)"
make --no-print-directory build
bash hack/run-local.sh --background

step "Applying the demo prerequisites (Secrets, the selfsigned ClusterIssuer), the sample policies and tenants"
"$kubectl" apply --server-side -f config/samples/demo/prerequisites.yaml
"$kubectl" wait --for condition=Ready --timeout 60s clusterissuer/selfsigned
"$kubectl" apply --server-side -k config/samples
"$kubectl" apply --server-side -f config/samples/demo/tenant-initech.yaml

step "Waiting up to ${timeout}s for every tenant to be Ready"
deadline=$((SECONDS + timeout))
last=""
while :; do
  # name=phase(ready) for every tenant; Ready when all report Ready=True.
  now=$("$kubectl" get tenants -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase}({.status.conditions[?(@.type=="Ready")].status}) {end}')
  [[ "$now" != "$last" ]] && printf '  %3ds  %s\n' "$((SECONDS - start))" "$now"
  last=$now
  if [[ -n "$now" && "$now" != *"(False)"* && "$now" != *"()"* ]]; then break; fi
  if ((SECONDS >= deadline)); then
    echo "Not every tenant is Ready after ${timeout}s. What they say:"
    "$kubectl" get tenants -o custom-columns='TENANT:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].reason,MESSAGE:.status.conditions[?(@.type=="Ready")].message'
    echo "Operator log: $dev/operator.log; cert-manager log: $dev/cert-manager.log; stop with: make demo-down"
    exit 1
  fi
  sleep 2
done

step "Stopping initech's application to show a tenant going down (the promise: known within 2 minutes)"
wait_for() { # jsonpath want timeout
  local deadline=$((SECONDS + $3))
  until [[ "$("$kubectl" get tenant initech -o jsonpath="$1")" == "$2" ]]; do
    ((SECONDS < deadline)) || { echo "initech: $1 is not $2 after $3 s"; return 1; }
    sleep 1
  done
}
wait_for '{.status.conditions[?(@.type=="Available")].status}' True 60
stop_demo_app
stopped=$SECONDS
wait_for '{.status.conditions[?(@.type=="Available")].reason}' Down 120
echo "  initech marked Down $((SECONDS - stopped)) s after its application stopped (probes every 15 s, down after 2 failures):"
"$kubectl" get tenants -o wide
"$kubectl" get tenant initech -o jsonpath='{range .status.conditions[?(@.type=="Available")]}  Available={.status} {.reason}: {.message}{"\n"}{end}'
"$kubectl" get events -A --field-selector involvedObject.name=initech,reason=Down -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message' 2>/dev/null || true

step "Status ($((SECONDS - start))s since make demo started)"
"$kubectl" get tenants,backuppolicies,retentionpolicies
echo
"$kubectl" get certificates -A
echo
"$kubectl" get statefulsets,pods,persistentvolumeclaims -n tenant-acme
echo
cronjobs=$("$kubectl" get cronjobs -A 2>&1)
if [[ "$cronjobs" == "No resources found"* ]]; then echo "No backup CronJobs yet."; else echo "$cronjobs"; fi

cat <<MSG

Look further:
  export KUBECONFIG=$KUBECONFIG PATH=$root/bin/control-plane:\$PATH
  kubectl describe tenant acme
  kubectl get all,networkpolicies,certificates,secrets -n tenant-acme
  kubectl get cronjobs,jobs -n tenant-operator-system
  kubectl get secret -n tenant-acme tenant-tls -o jsonpath='{.data.tls\.crt}' | base64 -d | openssl x509 -noout -subject -dates
Logs:
  operator      $dev/operator.log
  cert-manager  $dev/cert-manager.log
  cluster       KWOK_WORKDIR=$dev/kwok $root/bin/kwokctl-v0.8.0 --name tenantops-dev logs kube-apiserver
                (or etcd, kube-controller-manager, kube-scheduler, kwok-controller)
Stop everything:
  make demo-down
MSG
