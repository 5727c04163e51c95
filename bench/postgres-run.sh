#!/usr/bin/env bash
# PostgreSQL benchmark: a database of about 1 GB (pgbench's tables at scale 68) backed up by
# Coffer's engine (engine-bench backup-postgres: `pg_dump --format=custom --compress=0` streamed
# into a vault), first into an empty vault and then again with nothing changed (what
# deduplication saves), beside plain `pg_dump --format=custom` to a file and `restic backup` of
# that file (also twice: a second dump of the unchanged database, backed up again). Wall time and
# peak RSS from GNU time, stored sizes with du; medians over --runs runs, each from a fresh vault
# and a fresh restic repository.
#
#   bench/postgres-run.sh [--scale 68] [--runs 3] [--work DIR]
#
# Starts a throwaway cluster with .ci/postgres in DIR/pg, unless COFFER_BENCH_POSTGRES holds the
# admin URL of a running one (postgres://USER:PASSWORD@HOST:PORT/postgres). The database `bench`
# is made with pgbench once and kept. ENGINE_BENCH names a built engine-bench binary; without it
# the script builds one in release mode.
#
# Needs: the PostgreSQL server and client packages (pgbench comes with them), restic, GNU time.
set -euo pipefail

SCALE=68 RUNS=3 WORK=/tmp/coffer-pg-bench
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${ENGINE_BENCH:-} ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  (cd "$ROOT" && cargo build --release -q -p coffer-engine --bin engine-bench)
  ENGINE_BENCH=$CARGO_TARGET_DIR/release/engine-bench
fi
command -v restic >/dev/null || { echo "restic not installed (apt-get install restic)" >&2; exit 1; }
mkdir -p "$WORK"
RESULTS=$WORK/results.tsv
: >"$RESULTS"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ -n ${COFFER_BENCH_POSTGRES:-} ]]; then
  ADMIN=$COFFER_BENCH_POSTGRES
else
  PG=$WORK/pg
  trap '"$ROOT/.ci/postgres" stop "$PG" || true' EXIT
  eval "$("$ROOT/.ci/postgres" start "$PG")"
  ADMIN=$COFFER_TEST_POSTGRES
fi
DB=${ADMIN%/*}/bench
if [[ "$(psql "$ADMIN" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'bench'")" != 1 ]]; then
  psql "$ADMIN" -qc "CREATE DATABASE bench"
  pgbench -q -i -s "$SCALE" "$DB" >/dev/null 2>&1
fi
echo "database size: $(psql "$DB" -qAtc "SELECT pg_size_pretty(pg_database_size('bench'))")"
export RESTIC_PASSWORD=bench-password
kib() { du -sk "$1" | cut -f1; }

for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/vault" "$WORK/state" "$WORK/restic" "$WORK/bench.pgdump"
  "$ENGINE_BENCH" init "$WORK/state" "$WORK/vault" >/dev/null
  restic init -q -r "$WORK/restic" >/dev/null
  measure first coffer "$run" "$ENGINE_BENCH" backup-postgres "$WORK/state" "$WORK/vault" "$DB" rp1
  record size-first coffer "$run" "$(kib "$WORK/vault")"
  measure unchanged coffer "$run" "$ENGINE_BENCH" backup-postgres "$WORK/state" "$WORK/vault" "$DB" rp2
  record size-both coffer "$run" "$(kib "$WORK/vault")"
  measure first pg_dump "$run" pg_dump --format=custom --file="$WORK/bench.pgdump" "$DB"
  record size-first pg_dump "$run" "$(kib "$WORK/bench.pgdump")"
  measure first restic "$run" restic -q -r "$WORK/restic" backup "$WORK/bench.pgdump"
  record size-first restic "$run" "$(kib "$WORK/restic")"
  measure unchanged pg_dump "$run" pg_dump --format=custom --file="$WORK/bench.pgdump" "$DB"
  measure unchanged restic "$run" restic -q -r "$WORK/restic" backup "$WORK/bench.pgdump"
  record size-both restic "$run" "$(kib "$WORK/restic")"
done

echo
echo "Medians over $RUNS runs (scale $SCALE):"
medians
