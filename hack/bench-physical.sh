#!/usr/bin/env bash
# Benchmarks physical backups, WAL archiving and point-in-time recovery (issue 15's figures), in
# one run, on PostgreSQL 18 run as the operator runs a tenant's database when a BackupPolicy has a
# physical schedule (wal_level=replica, archive_mode=on, archive_command=/bin/true,
# archive_timeout=55s, summarize_wal=on; internal/builders/wal.go), with the agent's wal-receive
# streaming its WAL over a replication slot to versitygw on loopback. It prints, each with its
# target and PASS or MISS:
#   1 recovery point  a writer commits rows at a known rate, each with its commit time and WAL
#                     position, into a small cluster; per row, the time from its commit until its
#                     segment is archived (the worst is what a lost server would lose); then the
#                     writer stops, the archive catches up, restore --to-latest and count what is
#                     missing                                                   target: <= 60 s
#   2 base backup     backup --method physical vs pg_basebackup -D - -Ft -X none -c fast > /dev/null
#                     of the 1 GiB database's cluster; the agent's peak RSS  target: ratio <= 1.2
#                     beside it, for reference, the same stream through age and sha256sum, and
#                     through zstd -1, age and sha256sum, stored nowhere (age is built once)
#   3 WAL archiving   >= 1 GiB of WAL written while the receiver is stopped (the slot keeps it),
#                     then the time the receiver takes to archive all of it, run as its
#                     Deployment runs it (GOMEMLIMIT=96MiB); its RSS sampled meanwhile
#                                          target: >= 50 MiB/s, RSS flat and under its 128 MiB limit
#   4 incremental     a full backup, 1 % of the rows changed (a contiguous range of ids, recent
#                     data as a tenant changes it), an incremental one (--full-every,
#                     --manifest-key)                               target: incremental < 10 % of full
#   5 point in time   restore --to-time of the 1 GiB cluster after about BENCH_PITR_WAL_MIB of WAL
#                     vs untarring pg_basebackup's tar and replaying the same WAL (copied by
#                     pg_receivewal) to the same time with cp as restore_command  target: <= 1.5x
#
# The 1 GiB cluster (bench_large, generated as hack/bench-backup.sh generates it) is kept in
# $BENCH_DIR (default /var/tmp/tenant-operator-bench) and reused while the recipe is unchanged; a
# run leaves it with the same tables and size (some amounts changed) and no replication slot.
# Everything else lives in a temporary directory removed on exit, with the servers and processes
# the run started.
#
# Environment: BENCH_PHYSICAL_PG_MAJOR (default 18; 17 or later), BENCH_LARGE_ROWS, BENCH_REPEAT
# (runs per measurement of 2 and 4, median kept; default 3), BENCH_PHASES (default "1 2 3 4 5"),
# BENCH_WRITE_RATE (rows a second, default 20) and BENCH_WRITE_SECONDS (default 180) for 1,
# BENCH_WAL_MIB (default 1100) for 3, BENCH_PITR_WAL_MIB (default 512) for 5, BENCH_ARCHIVE_TIMEOUT
# (seconds, default the operator's 60), BENCH_COMPRESSION (the agent's --compression for its base
# backups, s2 or zstd; default: the agent's default, s2), AGENT_BIN (a built tenant-operator;
# default: build it).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_name=bench-physical
# shellcheck source=hack/bench-lib.sh
source "$repo/hack/bench-lib.sh"
major=${BENCH_PHYSICAL_PG_MAJOR:-18}
rows=${BENCH_LARGE_ROWS:-5600000}
repeat=${BENCH_REPEAT:-3}
phases=${BENCH_PHASES:-1 2 3 4 5}
write_rate=${BENCH_WRITE_RATE:-20}
write_seconds=${BENCH_WRITE_SECONDS:-180}
wal_mib=${BENCH_WAL_MIB:-1100}
pitr_wal_mib=${BENCH_PITR_WAL_MIB:-512}
archive_timeout=${BENCH_ARCHIVE_TIMEOUT:-55} # builders.ArchiveTimeout
bench_dir=${BENCH_DIR:-/var/tmp/tenant-operator-bench}

(( major >= 17 )) || die "BENCH_PHYSICAL_PG_MAJOR=$major: incremental backups need PostgreSQL 17 or later"
pgbin=$(pg_bin_dir "$major") || exit 1
for p in pg_basebackup pg_receivewal pg_combinebackup; do
  [[ -x $pgbin/$p ]] || die "$pgbin/$p missing (run: bash hack/postgres.sh)"
done
[[ -x $repo/bin/versitygw ]] || die "bin/versitygw missing (run: make bin/versitygw)"

work=$(mktemp -d /tmp/tenantops-bench-physical.XXXXXX)
chmod 755 "$work"
pids=()     # processes to stop on exit
datadirs=() # servers to stop on exit
slots=()    # "port slot" of replication slots to drop on exit
cleanup() {
  local p d s
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for s in "${slots[@]}"; do
    "$pgbin/psql" -X -q -d "postgres://postgres@127.0.0.1:${s% *}/postgres?sslmode=disable" \
      -c "SELECT pg_drop_replication_slot('${s#* }') FROM pg_replication_slots WHERE slot_name = '${s#* }'" >/dev/null 2>&1 || true
  done
  for d in "${datadirs[@]}"; do
    [[ -f $d/postmaster.pid ]] && as_pg "$pgbin/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

agent=$(build_agent) || exit 1

# --- helpers -------------------------------------------------------------------------------------
# start_server DATADIR PORT: the server as the operator runs a tenant's database with WAL archiving.
start_server() {
  local run
  run=$(dirname "$1")
  datadirs+=("$1")
  as_pg "$pgbin/pg_ctl" -D "$1" -l "$run/server.log" -w -t 300 -o "-p $2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$run \
-c wal_level=replica -c archive_mode=on -c archive_command=/bin/true -c archive_timeout=${archive_timeout}s -c summarize_wal=on \
-c max_wal_size=4GB" start >/dev/null
}
dsn() { echo "postgres://postgres@127.0.0.1:$1/$2?sslmode=disable"; } # PORT DB
sql() { PGOPTIONS="-c client_min_messages=warning" "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -At -d "$(dsn "$1" "$2")" "${@:3}"; } # PORT DB [psql args]

# lsn_num LSN prints a WAL position as a number.
lsn_num() { echo $(( (16#${1%/*} << 32) + 16#${1#*/} )); }
seg_size=$((16 << 20))
seg_ceil() { echo $(( ($1 + seg_size - 1) / seg_size * seg_size )); }
seg_floor() { echo $(( $1 / seg_size * seg_size )); }

# start_receiver NAME PORT SLOT STORAGE TENANT: wal-receive in the background, with the memory
# limit its Deployment gives it (GOMEMLIMIT=96MiB in a container limited to 128 MiB:
# internal/builders/wal.go); sets receiver_pid. Its status file is $work/NAME.status.json, its
# log $work/NAME.log.
start_receiver() {
  rm -f "$work/$1.status.json"
  GOMEMLIMIT=${BENCH_RECEIVER_GOMEMLIMIT:-96MiB} "$agent" wal-receive --dsn "$(dsn "$2" postgres)" --slot "$3" --storage "$4" --tenant "$5" --recipient "$recipient" \
    --signing-key-file "$work/signing.pem" --status-file "$work/$1.status.json" -v 2>>"$work/$1.log" &
  receiver_pid=$!
  pids+=("$receiver_pid")
  local _
  for _ in $(seq 300); do
    [[ $(sql "$2" postgres -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$3' AND active") == 1 ]] && return
    kill -0 "$receiver_pid" 2>/dev/null || die "wal-receive exited: $(tail -n 5 "$work/$1.log")"
    sleep 0.1
  done
  die "wal-receive did not start streaming: $(tail -n 5 "$work/$1.log")"
}
stop_receiver() {
  kill -TERM "$receiver_pid"
  wait "$receiver_pid" || die "wal-receive exited with status $? on SIGTERM"
}
# confirmed NAME prints the position the receiver NAME last confirmed (0 before its first segment).
confirmed() {
  local l
  l=$(jq -r '.confirmedLSN // empty' "$work/$1.status.json" 2>/dev/null || true)
  if [[ -n $l ]]; then lsn_num "$l"; else echo 0; fi
}
# wait_archived NAME POSITION DEADLINE_S: waits until the receiver has archived every segment up to
# POSITION (a number); sets $waited (seconds) and returns 1 past the deadline.
wait_archived() {
  local start now
  start=$(date +%s.%N)
  while (( $(confirmed "$1") < $2 )); do
    now=$(date +%s.%N)
    if (( $(echo "$now - $start > $3" | bc) )); then waited=$(echo "$now - $start" | bc); return 1; fi
    sleep 0.1
  done
  waited=$(echo "$(date +%s.%N) - $start" | bc)
}
# switch_target PORT prints the end of the segment that holds everything written so far, after
# ending that segment.
switch_target() { seg_ceil "$(lsn_num "$(sql "$1" postgres -c "SELECT pg_switch_wal()")")"; }

# generate_wal PORT TABLE MIB: writes at least MIB MiB of WAL by copying rows of events into TABLE.
generate_wal() {
  sql "$1" bench_large <<SQL
CREATE TABLE $2 (LIKE events);
DO \$\$
DECLARE s pg_lsn := pg_current_wal_lsn(); n bigint := 0;
BEGIN
  WHILE pg_wal_lsn_diff(pg_current_wal_lsn(), s) < $3::bigint * 1048576 LOOP
    INSERT INTO $2 SELECT * FROM events WHERE id > n AND id <= n + 250000;
    COMMIT;
    n := (n + 250000) % $rows;
  END LOOP;
END \$\$;
SQL
}

# physical PORT SCHEDULE [flags] sets $bp to the agent's command line for a physical backup of
# bench_large's cluster (run directly, not through a function, so that measure sees its RSS).
physical() {
  bp=("$agent" backup --method physical --dsn "$(dsn "$1" bench_large)" --storage "$storage" --tenant bench --schedule "$2"
    --recipient "$recipient" --signing-key-file "$work/signing.pem" --pg-bin-dir "$pgbin" "${@:3}")
  [[ -z ${BENCH_COMPRESSION:-} ]] || bp+=(--compression "$BENCH_COMPRESSION")
}

verdict() { if (( $(echo "$1" | bc) )); then echo PASS; else echo MISS; fi; } # a bc condition
declare -A fig # figures for the report, by name
report_row() { printf '%-44s %-34s %-16s %s\n' "$1" "$2" "$3" "$4"; }

# --- keys, storage ---------------------------------------------------------------------------------
start_service_s3() {
  start_versitygw
  storage="s3://bench/physical?endpoint=127.0.0.1:$s3port&insecure=true"
  rpo_storage="s3://bench/rpo?endpoint=127.0.0.1:$s3port&insecure=true"
}
start_service_s3
recipient=$(age_keygen "$work/key") || exit 1
manifest_recipient=$(age_keygen "$work/manifest-key") || exit 1
: "$manifest_recipient" # the key --manifest-key reads, given as its identity file
signing_public=$(signing_keygen "$work/signing.pem") || exit 1
restore_flags=(--identity-file "$work/key/identity.txt" --signing-public-key "$signing_public" --pg-bin-dir "$pgbin")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1: recovery point under steady writes ------------------------------------------------------------
phase_recovery_point() {
  local dir=$work/rpo port
  mkdir -p "$dir"
  chown postgres "$dir" 2>/dev/null || true
  port=$(free_port)
  as_pg "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  start_server "$dir/data" "$port"
  slots+=("$port tenantops_wal_rpo")
  sql "$port" postgres -c "CREATE DATABASE app"
  sql "$port" app -c "CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz NOT NULL, lsn pg_lsn NOT NULL)"
  start_receiver rpo "$port" tenantops_wal_rpo "$rpo_storage" rpo
  "$agent" backup --method physical --dsn "$(dsn "$port" app)" --storage "$rpo_storage" --tenant rpo --schedule physical \
    --recipient "$recipient" --signing-key-file "$work/signing.pem" --pg-bin-dir "$pgbin" >/dev/null
  log "1: writing $write_rate rows a second for $write_seconds s (archive_timeout ${archive_timeout}s)"
  # Each row holds its commit time (taken just before its commit) and the WAL position it was
  # written at, which names its segment.
  sql "$port" app <<SQL
DO \$\$
DECLARE deadline timestamptz := clock_timestamp() + make_interval(secs => $write_seconds);
BEGIN
  WHILE clock_timestamp() < deadline LOOP
    INSERT INTO writes (at, lsn) VALUES (clock_timestamp(), pg_current_wal_insert_lsn());
    COMMIT;
    PERFORM pg_sleep(1.0 / $write_rate);
  END LOOP;
END \$\$;
SQL
  local committed flushed
  committed=$(sql "$port" app -c "SELECT count(*) FROM writes")
  flushed=$(lsn_num "$(sql "$port" app -c "SELECT pg_current_wal_flush_lsn()")")
  log "1: writer stopped ($committed rows); waiting for the archive to reach it"
  if wait_archived rpo "$(seg_ceil "$flushed")" $((archive_timeout + 60)); then fig[rpo.caughtup]=$(printf %.1f "$waited"); else fig[rpo.caughtup]="> $(printf %.0f "$waited")"; fi
  # When each segment became archived: the mtime of its signed description, the object written last.
  local archived
  archived=$(find "$work/s3/bench/rpo" -path '*/wal/*' -name '0*.json' ! -name '*.history.json' -printf "('%f', %T@)," | sed 's/\.json'"'"'/'"'"'/g; s/,$//')
  [[ -n $archived ]] || die "no WAL archived for the recovery point"
  local lags
  lags=$(sql "$port" app -F ' ' <<SQL
CREATE TEMP TABLE archived (seg text PRIMARY KEY, at double precision);
INSERT INTO archived VALUES $archived;
SELECT count(*) FILTER (WHERE a.at IS NULL),
       round(max(a.at - extract(epoch FROM w.at))::numeric, 1),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY a.at - extract(epoch FROM w.at)))::numeric, 1),
       round((count(*) / extract(epoch FROM max(w.at) - min(w.at)))::numeric, 1)
  FROM writes w LEFT JOIN archived a ON a.seg = pg_walfile_name(w.lsn + 1);
SQL
)
  local unarchived worst mid rate
  read -r unarchived worst mid rate <<<"$lags"
  fig[rpo.unarchived]=$unarchived fig[rpo.max]=$worst fig[rpo.median]=$mid fig[rpo.rate]=$rate
  log "1: restoring to the end of the archive"
  measure "$work/rpo.restore" "$agent" restore --storage "$rpo_storage" --tenant rpo --data-dir "$dir/restored" --to-latest "${restore_flags[@]}"
  local restored
  restored=$(sed -n 's/.* has [0-9]* tables, \([0-9]*\) rows.*/\1/p' "$work/rpo.restore")
  [[ -n $restored ]] || die "restore --to-latest said: $(cat "$work/rpo.restore")"
  fig[rpo.committed]=$committed fig[rpo.missing]=$((committed - restored)) fig[rpo.restore]=$wall
  stop_receiver
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  rm -rf "$dir"
}

# --- the 1 GiB cluster ---------------------------------------------------------------------------------
recipe=$(printf '%s\n' "$major" "$rows" "physical-1" | sha256sum | cut -c1-12)
cluster=$bench_dir/pg$major-physical-$recipe
big_port=
open_cluster() {
  big_port=$(free_port)
  mkdir -p "$bench_dir"
  [[ $EUID -eq 0 ]] && chown postgres "$bench_dir"
  if [[ ! -f $cluster/.complete ]]; then
    log "creating the 1 GiB cluster in $cluster (once; takes a few minutes)"
    rm -rf "$cluster"
    as_pg mkdir -p "$cluster"
    as_pg "$pgbin/initdb" -D "$cluster/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  fi
  start_server "$cluster/data" "$big_port"
  if [[ ! -f $cluster/.complete ]]; then
    sql "$big_port" postgres -c "CREATE DATABASE bench_large"
    big_psql() { sql "$big_port" "$1" "${@:2}"; }
    generate_events big_psql bench_large "$rows"
    as_pg touch "$cluster/.complete"
  fi
  # What an interrupted run may have left.
  sql "$big_port" postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active" >/dev/null
  sql "$big_port" bench_large -c "DROP TABLE IF EXISTS walgen, pitr_rows, pitr_marker"
  fig[size]=$(sql "$big_port" postgres -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
  (( fig[size] >= 1 << 30 )) || die "the cluster holds only ${fig[size]} bytes; raise BENCH_LARGE_ROWS"
  slots+=("$big_port tenantops_wal_bench" "$big_port bench_plain")
  start_receiver big "$big_port" tenantops_wal_bench "$storage" bench
}

# --- 2: physical base backup vs pg_basebackup -----------------------------------------------------------
phase_base_backup() {
  local floor=() ours=() tools=() sealed=() rss=() i age_bin=$work/bin/age
  # References, done by the standard tools and stored nowhere: pg_basebackup's tar encrypted by
  # age to the same recipient and hashed with SHA-256 (the least any backup encrypted and
  # checksummed on the client does), and the same with zstd -1 (2 threads) before age. Their
  # ratios to pg_basebackup alone are what no agent doing that work beats on this machine.
  [[ -x $age_bin ]] || (cd "$work" && GOBIN=$work/bin go install "filippo.io/age/cmd/age@$(cd "$repo" && go list -m -f '{{.Version}}' filippo.io/age)") ||
    die "could not build age's command"
  for ((i = 1; i <= repeat; i++)); do
    log "2: base backup run $i/$repeat"
    measure /dev/null "$pgbin/pg_basebackup" -d "$(dsn "$big_port" bench_large)" -D - -Ft -X none -c fast
    floor+=("$wall")
    measure /dev/null bash -o pipefail -c '"$1" -d "$2" -D - -Ft -X none -c fast | zstd -q -1 -T2 | "$3" -r "$4" | sha256sum' \
      tools "$pgbin/pg_basebackup" "$(dsn "$big_port" bench_large)" "$age_bin" "$recipient"
    tools+=("$wall")
    measure /dev/null bash -o pipefail -c '"$1" -d "$2" -D - -Ft -X none -c fast | "$3" -r "$4" | sha256sum' \
      sealed "$pgbin/pg_basebackup" "$(dsn "$big_port" bench_large)" "$age_bin" "$recipient"
    sealed+=("$wall")
    physical "$big_port" full
    measure "$work/full.out" "${bp[@]}"
    ours+=("$wall") rss+=("$hwm")
  done
  fig[bb.tools]=$(median "${tools[@]}") fig[bb.sealed]=$(median "${sealed[@]}")
  fig[bb.floor]=$(median "${floor[@]}") fig[bb.ours]=$(median "${ours[@]}")
  fig[bb.rss]=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)
  fig[bb.sizes]=$(sed -n 's/.*, \(.* read, .* stored\), sha256.*/\1/p' "$work/full.out")
}

# --- 3: WAL archiving throughput -------------------------------------------------------------------------
phase_wal_throughput() {
  local from gen_start target t0 t1 rss_samples=() anon_samples=() r a
  stop_receiver
  from=$(seg_floor "$(lsn_num "$(sql "$big_port" postgres -c "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'tenantops_wal_bench'")")")
  log "3: writing ${wal_mib} MiB of WAL with the receiver stopped"
  gen_start=$(date +%s.%N)
  generate_wal "$big_port" walgen "$wal_mib"
  target=$(switch_target "$big_port")
  fig[wal.gen]=$(echo "scale=1; ($target - $from) / 1048576 / ($(date +%s.%N) - $gen_start)" | bc)
  fig[wal.mib]=$(( (target - from) >> 20 ))
  log "3: archiving ${fig[wal.mib]} MiB of WAL"
  t0=$(date +%s.%N)
  start_receiver big "$big_port" tenantops_wal_bench "$storage" bench
  while (( $(confirmed big) < target )); do
    kill -0 "$receiver_pid" 2>/dev/null || die "wal-receive exited: $(tail -n 5 "$work/big.log")"
    # Samples once it is archiving (its first segment stored), not while it starts.
    # VmRSS counts the program's own pages (a 90 MB binary, partly read in); RssAnon is its
    # memory proper, which a container limit cannot reclaim.
    read -r r a < <(awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {print r, a}' "/proc/$receiver_pid/status" 2>/dev/null || true)
    [[ -n $r && -n $a && -f $work/big.status.json ]] && rss_samples+=("$r") anon_samples+=("$a")
    sleep 0.2
  done
  t1=$(date +%s.%N)
  fig[wal.rate]=$(echo "scale=1; ($target - $from) / 1048576 / ($t1 - $t0)" | bc)
  fig[wal.secs]=$(echo "scale=1; ($t1 - $t0) / 1" | bc)
  (( ${#rss_samples[@]} )) || rss_samples=("$r") anon_samples=("$a")
  fig[wal.rssmin]=$(printf '%s\n' "${rss_samples[@]}" | sort -n | head -n1)
  fig[wal.rssmax]=$(printf '%s\n' "${rss_samples[@]}" | sort -n | tail -n1)
  fig[wal.samples]=${#rss_samples[@]}
  fig[wal.anonmin]=$(printf '%s\n' "${anon_samples[@]}" | sort -n | head -n1)
  fig[wal.anonmax]=$(printf '%s\n' "${anon_samples[@]}" | sort -n | tail -n1)
  log "3: receiver VmRSS samples, MiB, every 0.2 s: $(printf '%s\n' "${rss_samples[@]}" | awk '{printf "%d ", $1 / 1024}')"
  log "3: receiver RssAnon samples, MiB: $(printf '%s\n' "${anon_samples[@]}" | awk '{printf "%d ", $1 / 1024}')"
  fig[wal.hwm]=$(awk '/^VmHWM:/ {print $2}' "/proc/$receiver_pid/status")
  sql "$big_port" bench_large -c "DROP TABLE walgen"
}

# --- 4: incremental vs full ----------------------------------------------------------------------------
phase_incremental() {
  local ratios=() full=() incr=() i off chunk=$((rows / 100))
  for ((i = 1; i <= repeat; i++)); do
    log "4: incremental run $i/$repeat"
    physical "$big_port" "incr$i" --full-every 720h --manifest-key "$work/manifest-key/identity.txt"
    measure "$work/incr-full.out" "${bp[@]}"
    grep -q 'physical, full' "$work/incr-full.out" || die "expected a full backup: $(cat "$work/incr-full.out")"
    full+=("$wall")
    off=$(( (i - 1) * chunk ))
    sql "$big_port" bench_large -c "UPDATE events SET amount = amount + 1 WHERE id > $off AND id <= $off + $chunk"
    measure "$work/incr.out" "${bp[@]}"
    grep -q 'physical, incremental to' "$work/incr.out" || die "expected an incremental backup: $(cat "$work/incr.out")"
    incr+=("$wall") ratios+=("$(ratio "$wall" "${full[-1]}")")
  done
  fig[incr.full]=$(median "${full[@]}") fig[incr.incr]=$(median "${incr[@]}") fig[incr.ratio]=$(median "${ratios[@]}")
  fig[incr.sizes]=$(sed -n 's/.*, \(.* read, .* stored\), sha256.*/\1/p' "$work/incr.out")
  # The updates' dead rows, so that the next run finds the table as big as this one did.
  sql "$big_port" bench_large -c "VACUUM events"
}

# --- 5: point-in-time restore vs pg_basebackup's tar and the same WAL ----------------------------------------
# baseline_restore DIR TARGET: untar, replay with cp to TARGET, promote, stop cleanly (as the agent's restore does).
baseline_restore() {
  local dir=$1 port
  port=$(free_port)
  mkdir -m 700 "$dir"
  chown postgres "$dir" 2>/dev/null || true
  as_pg tar -xf "$work/plainbase/base.tar" -C "$dir"
  as_pg mkdir -p "$dir/pg_wal"
  as_pg tee -a "$dir/postgresql.auto.conf" >/dev/null <<CONF
restore_command = 'cp $work/plainwal/%f %p'
recovery_target_time = '$(sed 's/T/ /; s/Z$/+00/' <<<"$2")'
recovery_target_action = 'promote'
archive_mode = 'off'
CONF
  as_pg touch "$dir/recovery.signal"
  as_pg "$pgbin/pg_ctl" -D "$dir" -l "$work/plainbase/server.log" -w -t 600 -o "-p $port -c listen_addresses= -c unix_socket_directories=$dir" start >/dev/null ||
    { tail -n 20 "$work/plainbase/server.log" >&2; return 1; }
  until [[ $("$pgbin/psql" -X -At -h "$dir" -p "$port" -U postgres -d postgres -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; do sleep 0.1; done
  as_pg "$pgbin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
}

phase_point_in_time() {
  local target_time expected after target restored
  mkdir -p "$work/plainwal" "$work/plainbase"
  chown postgres "$work/plainwal" "$work/plainbase" 2>/dev/null || true
  "$pgbin/pg_receivewal" -d "$(dsn "$big_port" postgres)" -S bench_plain --create-slot
  as_pg "$pgbin/pg_receivewal" -d "$(dsn "$big_port" postgres)" -S bench_plain -D "$work/plainwal" -n 2>"$work/pg_receivewal.log" &
  pids+=($!)
  sql "$big_port" bench_large -c "CREATE TABLE pitr_marker (at timestamptz)"
  log "5: base backups (the agent's, then pg_basebackup's tar), ${pitr_wal_mib} MiB of WAL, a target time, more WAL"
  physical "$big_port" pitr
  "${bp[@]}" >/dev/null
  as_pg "$pgbin/pg_basebackup" -d "$(dsn "$big_port" bench_large)" -D "$work/plainbase" -Ft -X none -c fast 2>/dev/null
  generate_wal "$big_port" pitr_rows "$pitr_wal_mib"
  sql "$big_port" bench_large -c "UPDATE events SET amount = amount - 1 WHERE id <= $((rows / 100))"
  sleep 1
  target_time=$(sql "$big_port" postgres -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
  expected=$(sql "$big_port" bench_large -c "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM customers) + (SELECT count(*) FROM pitr_rows)")
  sleep 1
  sql "$big_port" bench_large -c "INSERT INTO pitr_marker VALUES (now())"
  sleep 3 # past the restore's margin for commit times
  sql "$big_port" bench_large -c "INSERT INTO pitr_marker VALUES (now())"
  target=$(switch_target "$big_port")
  wait_archived big "$target" 300 || die "the receiver did not archive the WAL of phase 5 in 300 s"
  local seg _
  seg=$(sql "$big_port" postgres -c "SELECT pg_walfile_name(pg_lsn '$(printf '%X/%X' $((target - 1 >> 32)) $(((target - 1) & 0xFFFFFFFF)))')")
  for _ in $(seq 600); do [[ -f $work/plainwal/$seg ]] && break; sleep 0.1; done
  [[ -f $work/plainwal/$seg ]] || die "pg_receivewal did not receive $seg"
  fig[pitr.wal]=$(( $(du -sm "$work/plainwal" | cut -f1) ))

  log "5: restore --to-time $target_time"
  measure "$work/pitr.out" "$agent" restore --storage "$storage" --tenant bench --schedule pitr --data-dir "$work/pitr-ours" \
    --to-time "$target_time" "${restore_flags[@]}"
  fig[pitr.ours]=$wall fig[pitr.rss]=$hwm
  restored=$(sed -n 's/.* has [0-9]* tables, \([0-9]*\) rows.*/\1/p' "$work/pitr.out")
  after=$(grep -c 'end of the archive' "$work/pitr.out" || true)
  # pitr_marker's rows came after the target: none may be restored.
  [[ $restored == "$expected" && $after == 0 ]] || die "restore to $target_time gave $restored rows, want $expected: $(cat "$work/pitr.out")"
  rm -rf "$work/pitr-ours"
  log "5: the same by hand: untar, replay with cp"
  datadirs+=("$work/pitr-plain") # the server measure's subshell starts
  measure /dev/null baseline_restore "$work/pitr-plain" "$target_time"
  fig[pitr.plain]=$wall
  rm -rf "$work/pitr-plain" "$work/plainbase"
  sql "$big_port" bench_large -c "DROP TABLE pitr_rows, pitr_marker" -c "VACUUM events"
}

# --- run -----------------------------------------------------------------------------------------------
for ph in $phases; do [[ $ph == 1 ]] && phase_recovery_point; done
if [[ " $phases " == *" "[2345]" "* ]]; then
  open_cluster
  for ph in $phases; do
    case $ph in
      2) phase_base_backup ;;
      3) phase_wal_throughput ;;
      4) phase_incremental ;;
      5) phase_point_in_time ;;
    esac
  done
  stop_receiver
fi

# --- report ----------------------------------------------------------------------------------------------
kib_mib() { echo "scale=1; $1 / 1024" | bc; }
echo
echo "physical backup benchmark: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), $(nproc) cores shared by the servers, the agent, pg_basebackup and versitygw; archive_timeout ${archive_timeout}s; base backups compressed with ${BENCH_COMPRESSION:-the default codec}; median of $repeat runs"
[[ -n ${fig[size]:-} ]] && echo "cluster: $(mib "${fig[size]}") MiB (bench_large, $rows rows)"
report_row figure measured target result
for ph in $phases; do
  case $ph in
    1)
      report_row "1 recovery point (worst row)" "${fig[rpo.max]} s (median ${fig[rpo.median]} s)" "<= 60 s" "$(verdict "${fig[rpo.max]} <= 60")"
      report_row "  archive caught up after the writer stopped" "${fig[rpo.caughtup]} s" "<= $((archive_timeout + 60)) s" ""
      report_row "  rows missing after restore --to-latest" "${fig[rpo.missing]} of ${fig[rpo.committed]} (${fig[rpo.rate]}/s)" "0" "$(verdict "${fig[rpo.missing]} == 0 && ${fig[rpo.unarchived]} == 0")"
      ;;
    2)
      report_row "2 base backup: ours / pg_basebackup" "$(printf %.1f "${fig[bb.ours]}") s / $(printf %.1f "${fig[bb.floor]}") s = $(ratio "${fig[bb.ours]}" "${fig[bb.floor]}")" "<= 1.2" "$(verdict "${fig[bb.ours]} <= 1.2 * ${fig[bb.floor]}")"
      report_row "  pg_basebackup | age | sha256sum, stored nowhere / pg_basebackup" "$(printf %.1f "${fig[bb.sealed]}") s / $(printf %.1f "${fig[bb.floor]}") s = $(ratio "${fig[bb.sealed]}" "${fig[bb.floor]}")" "" ""
      report_row "  the same with zstd -1 before age / pg_basebackup" "$(printf %.1f "${fig[bb.tools]}") s / $(printf %.1f "${fig[bb.floor]}") s = $(ratio "${fig[bb.tools]}" "${fig[bb.floor]}")" "" ""
      report_row "  agent peak RSS (VmHWM)" "$(kib_mib "${fig[bb.rss]}") MiB" "< 128 MiB" "$(verdict "${fig[bb.rss]} < 131072")"
      report_row "  sizes" "${fig[bb.sizes]}" "" ""
      ;;
    3)
      report_row "3 WAL archived by wal-receive" "${fig[wal.mib]} MiB in ${fig[wal.secs]} s = ${fig[wal.rate]} MiB/s" ">= 50 MiB/s" "$(verdict "${fig[wal.rate]} >= 50")"
      report_row "  receiver RssAnon (${fig[wal.samples]} samples)" "$(kib_mib "${fig[wal.anonmin]}") to $(kib_mib "${fig[wal.anonmax]}") MiB" "flat, < 128 MiB" "$(verdict "${fig[wal.anonmax]} < 131072")"
      report_row "  receiver VmRSS (with its binary's pages)" "$(kib_mib "${fig[wal.rssmin]}") to $(kib_mib "${fig[wal.rssmax]}") MiB, HWM $(kib_mib "${fig[wal.hwm]}")" "" ""
      report_row "  WAL written meanwhile (receiver stopped)" "${fig[wal.gen]} MiB/s" "" ""
      ;;
    4)
      report_row "4 incremental / full (1 % of rows changed)" "$(printf %.1f "${fig[incr.incr]}") s / $(printf %.1f "${fig[incr.full]}") s = ${fig[incr.ratio]}" "< 0.10" "$(verdict "${fig[incr.ratio]} < 0.10")"
      report_row "  incremental sizes" "${fig[incr.sizes]}" "" ""
      ;;
    5)
      report_row "5 restore --to-time / untar + replay" "$(printf %.1f "${fig[pitr.ours]}") s / $(printf %.1f "${fig[pitr.plain]}") s = $(ratio "${fig[pitr.ours]}" "${fig[pitr.plain]}")" "<= 1.5" "$(verdict "${fig[pitr.ours]} <= 1.5 * ${fig[pitr.plain]}")"
      report_row "  WAL replayed (as pg_receivewal stored it)" "${fig[pitr.wal]} MiB" "" ""
      report_row "  agent peak RSS" "$(kib_mib "${fig[pitr.rss]}") MiB" "" ""
      ;;
  esac
done
echo "load average before the runs: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the ratios)"
