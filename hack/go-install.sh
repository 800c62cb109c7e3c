#!/usr/bin/env bash
# Installs a Go command at a pinned version into a file of the given name, through a per-version
# cache in the user's cache directory so that a fresh clone on the same machine need not rebuild.
# Usage: hack/go-install.sh OUTPUT PACKAGE VERSION
set -euo pipefail
out=$1 pkg=$2 version=$3
name=$(basename "$pkg")
cache_root=${TENANTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-operator}
cached="$cache_root/go-tools/$(go env GOVERSION)/$name-$version/$name"
if [[ ! -x "$cached" ]]; then
  echo "installing $pkg@$version" >&2
  GOBIN="$(dirname "$cached")" CGO_ENABLED=0 go install "$pkg@$version"
fi
mkdir -p "$(dirname "$out")"
ln -sfn "$cached" "$out"
