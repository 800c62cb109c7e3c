#!/usr/bin/env bash
# Benchmarks the backup agent against plain pg_dump, in one run, on generated databases of two sizes
# (the large one at least 1 GiB), and prints ratios of wall time and the agent's peak RSS:
#   floor    pg_dump -Fc -Z0 > /dev/null            the dump alone          target: ours/floor <= 1.15
#   cronjob  pg_dump -Fc > file                     a hand-written CronJob  target: ours/cronjob < 1
#   ours     tenant-operator backup (dump, zstd, age, upload to versitygw on loopback)
#   volume   the same into a file:// volume (a directory on the local disk)
#   data key ours, encrypted to a per-tenant data key (--data-key, as the operator's jobs run it)
#            instead of the platform's recipient              target: data key/ours unchanged (1.00 within noise)
#   restore  tenant-operator restore  vs  pg_restore of the CronJob's file (both --single-transaction)
# Peak RSS is the agent process's own high-water mark (VmHWM), polled from /proc; target: under
# 128 MiB and the same at both sizes.
#
# The generated databases are kept in $BENCH_DIR (default /var/tmp/tenant-operator-bench), owned by
# the postgres user, and reused by later runs while the recipe is unchanged.
#
# Environment: BENCH_PG_MAJOR (15, or 18 from hack/postgres.sh), BENCH_LARGE_ROWS, BENCH_SMALL_ROWS,
# BENCH_REPEAT (runs per measurement, median kept), AGENT_BIN (a built tenant-operator; default:
# build it).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_name=bench-backup
# shellcheck source=hack/bench-lib.sh
source "$repo/hack/bench-lib.sh"
major=${BENCH_PG_MAJOR:-15}
large_rows=${BENCH_LARGE_ROWS:-5600000}
small_rows=${BENCH_SMALL_ROWS:-1400000}
repeat=${BENCH_REPEAT:-3}
bench_dir=${BENCH_DIR:-/var/tmp/tenant-operator-bench}

pgbin=$(pg_bin_dir "$major") || exit 1
[[ -x $repo/bin/versitygw ]] || die "bin/versitygw missing (run: make bin/versitygw)"

work=$(mktemp -d /tmp/tenantops-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n ${pgdata:-} && -f $pgdata/postmaster.pid ]] && as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

agent=$(build_agent) || exit 1

# --- PostgreSQL with the generated databases ---------------------------------------------------
recipe=$(printf '%s\n' "$major" "$large_rows" "$small_rows" "recipe-2" | sha256sum | cut -c1-12)
cluster=$bench_dir/pg$major-$recipe
pgdata=$cluster/data
port=$(free_port)
mkdir -p "$bench_dir"
[[ $EUID -eq 0 ]] && chown postgres "$bench_dir"
if [[ ! -f $cluster/.complete ]]; then
  log "creating the benchmark databases in $cluster (once; takes a few minutes)"
  rm -rf "$cluster"
  as_pg mkdir -p "$cluster"
  as_pg "$pgbin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C >/dev/null
fi
as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$cluster/server.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$cluster -c max_wal_size=4GB" start >/dev/null
dsn() { echo "postgres://postgres@127.0.0.1:$port/$1?sslmode=disable"; }
psql_() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -d "$(dsn "$1")" "${@:2}"; }
if [[ ! -f $cluster/.complete ]]; then
  for db in small:$small_rows large:$large_rows; do
    name=bench_${db%%:*} rows=${db#*:}
    log "generating $name ($rows rows)"
    psql_ postgres -c "CREATE DATABASE $name"
    generate_events psql_ "$name" "$rows"
  done
  as_pg touch "$cluster/.complete"
fi
size_of() { psql_ postgres -At -c "SELECT pg_database_size('$1')"; }
large_size=$(size_of bench_large)
(( large_size >= 1 << 30 )) || die "bench_large is only $large_size bytes; raise BENCH_LARGE_ROWS"

# --- versitygw ---------------------------------------------------------------------------------
start_versitygw
storage="s3://bench/runs?endpoint=127.0.0.1:$s3port&insecure=true"
mkdir -p "$work/volume"

# An age key pair, from age's own age-keygen at the version the agent uses.
keydir=$work/key
recipient=$(age_keygen "$keydir") || exit 1
# A per-tenant data key as the operator makes it (datakey.Generate): an age identity, its public
# half, and the identity wrapped (armored age) to the platform's recipient.
datakeydir=$work/datakey
mkdir -p "$datakeydir"
age_keygen "$datakeydir" > "$datakeydir/recipient" || exit 1
grep '^AGE-SECRET-KEY-' "$datakeydir/identity.txt" |
  (cd "$work" && go run "filippo.io/age/cmd/age@$(cd "$repo" && go list -m -f '{{.Version}}' filippo.io/age)" -a -r "$recipient" -o "$datakeydir/wrapped.age") ||
  die "wrapping the data key failed"
rm -f "$datakeydir/identity.txt" "$datakeydir/public.txt"
# Signed as the operator's jobs sign them: restore refuses unsigned backups.
signing_public=$(signing_keygen "$keydir/signing.pem") || exit 1

# --- measuring ---------------------------------------------------------------------------------
declare -A result
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for db in bench_small bench_large; do
  floor=() cron=() ours=() vol=() dk=() rss=()
  for ((i = 1; i <= repeat; i++)); do
    log "$db run $i/$repeat"
    measure /dev/null "$pgbin/pg_dump" -Fc -Z0 -d "$(dsn "$db")"
    floor+=("$wall")
    measure "$work/$db.dump" "$pgbin/pg_dump" -Fc -d "$(dsn "$db")"
    cron+=("$wall")
    measure "$work/ours.out" "$agent" backup --dsn "$(dsn "$db")" --storage "$storage" --tenant bench --schedule "$db" \
      --recipient "$recipient" --signing-key-file "$keydir/signing.pem" --pg-bin-dir "$pgbin"
    ours+=("$wall") rss+=("$hwm")
    measure /dev/null "$agent" backup --dsn "$(dsn "$db")" --storage "file://$work/volume" --tenant bench --schedule "$db" \
      --recipient "$recipient" --signing-key-file "$keydir/signing.pem" --pg-bin-dir "$pgbin"
    vol+=("$wall") rss+=("$hwm")
    measure /dev/null "$agent" backup --dsn "$(dsn "$db")" --storage "$storage" --tenant bench --schedule "$db-datakey" \
      --data-key "$datakeydir" --tenant-uid 00000000-0000-4000-8000-000000000001 --signing-key-file "$keydir/signing.pem" --pg-bin-dir "$pgbin"
    dk+=("$wall") rss+=("$hwm")
    rm -rf "${work:?}/volume/bench"
  done
  result[$db.size]=$(size_of "$db")
  result[$db.floor]=$(median "${floor[@]}")
  result[$db.cron]=$(median "${cron[@]}")
  result[$db.ours]=$(median "${ours[@]}")
  result[$db.vol]=$(median "${vol[@]}")
  result[$db.dk]=$(median "${dk[@]}")
  result[$db.rss]=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)
  result[$db.cronsize]=$(stat -c %s "$work/$db.dump")
  result[$db.id]=$(tail -n1 "$work/ours.out")
done

log "restoring bench_large both ways"
psql_ postgres -c "DROP DATABASE IF EXISTS restore_ours" -c "DROP DATABASE IF EXISTS restore_plain" \
  -c "CREATE DATABASE restore_ours" -c "CREATE DATABASE restore_plain"
measure /dev/null "$agent" restore --storage "$storage" --tenant bench --schedule bench_large --backup "${result[bench_large.id]}" \
  --identity-file "$keydir/identity.txt" --signing-public-key "$signing_public" --dsn "$(dsn restore_ours)" --pg-bin-dir "$pgbin"
restore_ours=$wall restore_rss=$hwm
measure /dev/null "$pgbin/pg_restore" --single-transaction --exit-on-error -d "$(dsn restore_plain)" "$work/bench_large.dump"
restore_plain=$wall
rows_ours=$(psql_ restore_ours -At -c "SELECT count(*) FROM events")
rows_plain=$(psql_ restore_plain -At -c "SELECT count(*) FROM events")
[[ $rows_ours == "$rows_plain" && $rows_ours == "$large_rows" ]] || die "restored row counts differ: ours $rows_ours, pg_restore $rows_plain, want $large_rows"
psql_ postgres -c "DROP DATABASE restore_ours" -c "DROP DATABASE restore_plain"
stored_large=$(find "$work/s3/bench/runs/bench/bench_large" -name backup.dump.zst.age -printf '%s\n' | head -n1)

# --- report ------------------------------------------------------------------------------------
echo
echo "backup agent benchmark: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), $(nproc) cores shared by the server, pg_dump, the agent and versitygw; median of $repeat runs"
printf '%-12s %7s %8s %10s %7s %11s %13s %9s %11s %10s\n' database "db MiB" "floor s" "cronjob s" "ours s" ours/floor ours/cronjob "volume s" volume/floor "agent RSS"
for db in bench_small bench_large; do
  printf '%-12s %7s %8.2f %10.2f %7.2f %11s %13s %9.2f %11s %6s MiB\n' "$db" "$(mib "${result[$db.size]}")" \
    "${result[$db.floor]}" "${result[$db.cron]}" "${result[$db.ours]}" \
    "$(ratio "${result[$db.ours]}" "${result[$db.floor]}")" "$(ratio "${result[$db.ours]}" "${result[$db.cron]}")" \
    "${result[$db.vol]}" "$(ratio "${result[$db.vol]}" "${result[$db.floor]}")" "$(mib $((result[$db.rss] * 1024)))"
done
for db in bench_small bench_large; do
  printf 'per-tenant data key, %s: %.2f s against %.2f s to the platform recipient, ratio %s\n' "$db" "${result[$db.dk]}" "${result[$db.ours]}" "$(ratio "${result[$db.dk]}" "${result[$db.ours]}")"
done
echo "stored size of bench_large: ours $(mib "$stored_large") MiB (zstd + age), cronjob file $(mib "${result[bench_large.cronsize]}") MiB (pg_dump's gzip)"
printf 'restore of bench_large: ours %.2f s (agent RSS %s MiB), pg_restore of the cronjob file %.2f s, ratio %s\n' \
  "$restore_ours" "$(mib $((restore_rss * 1024)))" "$restore_plain" "$(ratio "$restore_ours" "$restore_plain")"
echo "load average before the runs: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the ratios)"
echo "targets: ours/floor <= 1.15, ours/cronjob < 1, agent RSS < 128 MiB and flat across sizes"
