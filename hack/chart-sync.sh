#!/usr/bin/env bash
# Copies what the chart shares with config/ into charts/tenant-operator/files, so that there is one
# source for each: the CRDs and the ClusterRole controller-gen generates, the webhook configuration it
# generates, the ValidatingAdmissionPolicies, and the monitoring rules and dashboard. The chart's
# templates read these files; `make manifests` runs this script and `make verify` fails on drift.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
files=charts/tenant-operator/files
copy() { # copy SOURCE-GLOB... DESTINATION-DIR: replaces every file in the destination
  local dst=${*: -1}
  mkdir -p "$files/$dst"
  rm -f "$files/$dst"/*
  for f in "${@:1:$#-1}"; do
    install -m 0644 "$f" "$files/$dst/$(basename "$f")"
  done
}
copy config/crd/bases/*.yaml crds
copy config/rbac/role.yaml config/rbac/erasurerequest_roles.yaml rbac
copy config/webhook/manifests.yaml webhook
copy $(ls config/policies/*.yaml | grep -v /kustomization.yaml) policies
copy config/prometheus/prometheus-rule.yaml config/prometheus/dashboard.json prometheus
