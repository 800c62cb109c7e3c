#!/usr/bin/env bash
# Starts (up) or stops (down) the local control plane of hack/dev-cluster in the background.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dev="$root/bin/dev"
pidfile="$dev/dev-cluster.pid"
mkdir -p "$dev"

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-up}" in
up)
  if running && [[ -f "$dev/kubeconfig" ]]; then
    echo "Local control plane already running; KUBECONFIG=$dev/kubeconfig"; exit 0
  fi
  bash "$root/hack/control-plane.sh" >/dev/null
  (cd "$root" && go build -o "$root/bin/dev-cluster" ./hack/dev-cluster)
  rm -f "$dev/kubeconfig"
  nohup "$root/bin/dev-cluster" --dir "$dev" >"$dev/dev-cluster.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 240); do
    [[ -f "$dev/kubeconfig" ]] && break
    if ! running; then echo "Local control plane failed to start:"; tail -20 "$dev/dev-cluster.log"; exit 1; fi
    sleep 0.5
  done
  [[ -f "$dev/kubeconfig" ]] || { echo "Local control plane did not become ready in 120s"; tail -20 "$dev/dev-cluster.log"; exit 1; }
  echo "Local control plane running; KUBECONFIG=$dev/kubeconfig (log: $dev/dev-cluster.log)"
  ;;
down)
  if running; then
    pid=$(cat "$pidfile"); kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile" "$dev/kubeconfig"
  echo "Local control plane stopped"
  ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
