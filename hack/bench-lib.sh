# shellcheck shell=bash disable=SC2154,SC2034 # bench_name, repo, work come from, wall and hwm go to, the sourcing script
# What the backup benchmarks share (hack/bench-backup.sh, hack/bench-physical.sh): finding
# PostgreSQL, building the agent, versitygw on loopback, age keys, the generated data, and timing a
# command with the peak RSS of its process. Sourced, not run. The sourcing script sets
# bench_name (for messages), repo, work (its temporary directory) and pids (processes to stop on
# exit) before calling these.

die() { echo "$bench_name: error: $*" >&2; exit 1; }
log() { echo "$bench_name: $*" >&2; }

# pg_bin_dir MAJOR prints where PostgreSQL MAJOR's programs are: Debian's 15, or what
# hack/postgres.sh installed into bin/postgres/MAJOR (resolved, since the server may run as the
# postgres user, who cannot read a checkout under /root).
pg_bin_dir() {
  local dir
  if [[ $1 == 15 ]]; then dir=/usr/lib/postgresql/15/bin; else dir=$repo/bin/postgres/$1/bin; fi
  [[ -x $dir/pg_dump && -x $dir/postgres ]] || die "PostgreSQL $1 not found in $dir (run: bash hack/postgres.sh, or apt-get install postgresql-15)"
  readlink -f "$dir"
}

# free_port prints a loopback port nothing listens on.
free_port() {
  local p
  while :; do
    p=$(shuf -i 20000-60000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# build_agent prints the agent to run: $AGENT_BIN, or one built from this checkout into $work.
build_agent() {
  if [[ -n ${AGENT_BIN:-} ]]; then echo "$AGENT_BIN"; return; fi
  log "building tenant-operator"
  (cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$work/tenant-operator" .) || die "go build failed; set AGENT_BIN to a built tenant-operator"
  echo "$work/tenant-operator"
}

# start_versitygw starts an S3 server on loopback serving $work/s3 (bucket "bench"), exports the
# credentials and sets s3port.
start_versitygw() {
  [[ -x $repo/bin/versitygw ]] || die "bin/versitygw missing (run: make bin/versitygw)"
  s3port=$(free_port)
  mkdir -p "$work/s3/bench"
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-$RANDOM$RANDOM
  "$repo/bin/versitygw" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$s3port" --quiet \
    posix "$work/s3" >"$work/versitygw.log" 2>&1 &
  pids+=($!)
  local _
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null && return; sleep 0.1; done
  die "versitygw did not start: $(tail -n 5 "$work/versitygw.log")"
}

# age_keygen DIR writes an age key pair (DIR/identity.txt) with age's own age-keygen at the version
# the agent uses, and prints its public key.
age_keygen() {
  local dir=$1 version
  mkdir -p "$dir"
  version=$(cd "$repo" && go list -m -f '{{.Version}}' filippo.io/age)
  (cd "$work" && go run "filippo.io/age/cmd/age-keygen@$version" -o "$dir/identity.txt") 2>"$dir/public.txt" ||
    die "age-keygen failed: $(cat "$dir/public.txt")"
  awk '/Public key:/ {print $3}' "$dir/public.txt"
}

# signing_keygen FILE writes an Ed25519 private key (PKCS #8 PEM) that signs manifests, as the
# policy's key does, and prints its public key as restore and verify take it (ed25519:BASE64).
signing_keygen() {
  openssl genpkey -algorithm ed25519 -out "$1" 2>/dev/null || die "openssl genpkey failed"
  echo "ed25519:$(openssl pkey -in "$1" -pubout -outform DER | tail -c 32 | base64)"
}

# generate_events PSQL_FN DB ROWS fills the empty database DB through PSQL_FN (called as
# PSQL_FN DB [psql args], SQL on stdin) with the benchmarks' data: realistic rather than
# flattering, hex digests and numbers that compress about 2:1, unlike pgbench's blank filler,
# which compresses a hundredfold.
generate_events() {
  "$1" "$2" <<SQL
CREATE TABLE events (
  id bigint PRIMARY KEY, tenant_id int NOT NULL, at timestamptz NOT NULL, kind text NOT NULL,
  amount numeric(12,2), ref text, body text);
INSERT INTO events
  SELECT g, g % 1000, timestamptz '2025-01-01' + g * interval '1 second',
         (ARRAY['click','view','purchase','refund'])[1 + g % 4], (g % 100000) / 100.0,
         md5(g::text), md5((g * 7)::text) || ' ' || md5((g * 13)::text) || ' note ' || g
  FROM generate_series(1, $3) g;
CREATE INDEX events_tenant_at ON events (tenant_id, at);
CREATE TABLE customers AS SELECT g AS id, 'customer ' || g AS name, md5(g::text) || '@example.com' AS email
  FROM generate_series(1, $3 / 20) g;
ALTER TABLE customers ADD PRIMARY KEY (id);
VACUUM ANALYZE;
SQL
}

# measure OUT CMD...: runs CMD with stdout to OUT, sets $wall (seconds) and $hwm (peak RSS of that
# process itself, KiB; its children such as pg_dump are not counted).
measure() {
  local out=$1 start end pid status line
  shift
  hwm=0
  start=$(date +%s.%N)
  "$@" >"$out" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    line=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n $line ]] && (( line > hwm )) && hwm=$line
    sleep 0.05
  done
  status=0
  wait "$pid" || status=$?
  end=$(date +%s.%N)
  wall=$(echo "$end - $start" | bc)
  (( status == 0 )) || die "command failed ($status): $*"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc; }
mib() { echo "scale=1; $1 / 1048576" | bc; }
