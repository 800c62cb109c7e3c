#!/usr/bin/env bash
# Builds the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from the Go module proxy and links it into bin/control-plane.
#
# The first build of kube-apiserver takes about 9 minutes on 2 cores, so the binaries are cached in the
# user's cache directory, keyed by the pinned versions and the wrapper modules: a fresh clone on the same
# machine finds them there, and a version bump builds a new set.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kube_version=v1.37.0
etcd_version=v3.6.5

key=$(cat "$root/hack/tools/kube/go.mod" "$root/hack/tools/kube/go.sum" \
          "$root/hack/tools/etcd/go.mod" "$root/hack/tools/etcd/go.sum" | sha256sum | cut -c1-12)
cache_root=${TENANTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-operator}
cache="$cache_root/control-plane/kube-$kube_version-etcd-$etcd_version-$(go env GOVERSION)-$key"
link="$root/bin/control-plane"

build() {
  local module_dir=$1 pkg=$2 out=$3 ldflags=${4:-}
  if [[ -x "$cache/$out" ]]; then return; fi
  echo "building $out from $pkg (cached afterwards in $cache)" >&2
  (cd "$module_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cache/$out.tmp" "$pkg")
  mv "$cache/$out.tmp" "$cache/$out"
}

mkdir -p "$cache"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
 -X k8s.io/component-base/version.gitTreeState=clean"
build "$root/hack/tools/etcd" go.etcd.io/etcd/server/v3 etcd "-s -w"
build "$root/hack/tools/kube" k8s.io/kubernetes/cmd/kubectl kubectl "$kube_ldflags"
build "$root/hack/tools/kube" k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kube_ldflags"
if [[ "${CONTROL_PLANE_MINIMAL:-}" != 1 ]]; then
  build "$root/hack/tools/kube" k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$kube_ldflags"
  build "$root/hack/tools/kube" k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler "$kube_ldflags"
fi

mkdir -p "$root/bin"
ln -sfn "$cache" "$link"
echo "$link"
