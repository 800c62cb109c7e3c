#!/usr/bin/env bash
# Generates docs/api-reference.md from the Go types in api/v1alpha1: crd-ref-docs (pinned, built
# from the Go module proxy by hack/go-install.sh) renders the kinds and types with the templates in
# hack/api-docs/templates, and hack/api-docs/conditions appends the condition types and reasons of
# api/v1alpha1/conditions.go. make api-docs runs this, and make manifests runs make api-docs, so
# make verify fails when the committed page is stale.
#
# Environment: CRD_REF_DOCS, the crd-ref-docs binary (the Makefile passes its pinned one); without
# it, bin/crd-ref-docs-$CRD_REF_DOCS_VERSION (v0.3.0), installed when missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
version=${CRD_REF_DOCS_VERSION:-v0.3.0}
tool=${CRD_REF_DOCS:-$root/bin/crd-ref-docs-$version}
out=docs/api-reference.md

[[ -x "$tool" ]] || bash hack/go-install.sh "$tool" github.com/elastic/crd-ref-docs "$version"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$tool" --source-path=api --config=hack/api-docs/config.yaml --renderer=markdown \
    --templates-dir=hack/api-docs/templates --output-path="$tmp/types.md" --log-level=ERROR >"$tmp/log" 2>&1; then
  cat "$tmp/log" >&2
  exit 1
fi
go run ./hack/api-docs/conditions api/v1alpha1/conditions.go >"$tmp/conditions.md"
# Markdown ignores runs of blank lines; the templates leave some. One blank line at most, and no
# trailing spaces, so that the page's diff shows only what changed in the types.
cat "$tmp/types.md" "$tmp/conditions.md" | sed -e 's/[[:space:]]*$//' | cat -s >"$tmp/page.md"
mv "$tmp/page.md" "$out"
echo "Generated $out"
