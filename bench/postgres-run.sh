#!/usr/bin/env bash
# PostgreSQL benchmark: a database of about 1 GB (pgbench's tables at scale 68) backed up by
# Coffer's engine (engine-bench backup-postgres: pg_dump --format=custom streamed into a vault)
# beside plain `pg_dump --format=custom` to a file, and restic backing up that file. Wall time
# and peak RSS from GNU time; sizes with du. One run per step, printed as a table.
#
#   bench/postgres-run.sh [--scale 68] [--work DIR]
#
# Needs: the PostgreSQL server and client packages (.ci/postgres starts a throwaway cluster),
# restic (optional), GNU time; builds engine-bench in release mode.
set -euo pipefail

SCALE=68 WORK=/tmp/coffer-pg-bench
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p coffer-engine --bin engine-bench)
BENCH=$CARGO_TARGET_DIR/release/engine-bench
[[ -x /usr/bin/time ]] || { echo "GNU time not installed (apt-get install time)" >&2; exit 1; }

mkdir -p "$WORK"
PG=$WORK/pg
trap '"$ROOT/.ci/postgres" stop "$PG" || true' EXIT
eval "$("$ROOT/.ci/postgres" start "$PG")"
ADMIN=$COFFER_TEST_POSTGRES
DB=${ADMIN%/*}/bench
if [[ "$(psql "$ADMIN" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'bench'")" != 1 ]]; then
  psql "$ADMIN" -qc "CREATE DATABASE bench"
  pgbench -q -i -s "$SCALE" "$DB" >/dev/null
fi
echo "database size: $(psql "$DB" -qAtc "SELECT pg_size_pretty(pg_database_size('bench'))")"

# measure NAME CMD...: runs CMD under GNU time, prints seconds and peak RSS.
measure() {
  local name=$1; shift
  sync
  [[ -w /proc/sys/vm/drop_caches ]] && echo 3 >/proc/sys/vm/drop_caches || true
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; exit 1; }
  read -r secs kib <"$WORK/time"
  printf '| %s | %s s | %s MiB |' "$name" "$secs" "$((kib / 1024))"
}

rm -rf "$WORK/vault" "$WORK/state" "$WORK/restic" "$WORK/bench.pgdump"
"$BENCH" init "$WORK/state" "$WORK/vault" >/dev/null
echo "| step | time | peak RSS | stored |"
echo "|---|---|---|---|"
measure "Coffer: pg_dump streamed into a vault" "$BENCH" backup-postgres "$WORK/state" "$WORK/vault" "$DB" rp1
echo " $(du -sm "$WORK/vault" | cut -f1) MiB |"
measure "Coffer: second backup (unchanged database)" "$BENCH" backup-postgres "$WORK/state" "$WORK/vault" "$DB" rp2
echo " $(du -sm "$WORK/vault" | cut -f1) MiB |"
measure "pg_dump --format=custom to a file" pg_dump --format=custom --file="$WORK/bench.pgdump" "$DB"
echo " $(du -sm "$WORK/bench.pgdump" | cut -f1) MiB |"
if command -v restic >/dev/null; then
  export RESTIC_PASSWORD=bench-password
  restic init -q -r "$WORK/restic"
  measure "restic backup of that dump file" restic -q -r "$WORK/restic" backup "$WORK/bench.pgdump"
  echo " $(du -sm "$WORK/restic" | cut -f1) MiB |"
fi
