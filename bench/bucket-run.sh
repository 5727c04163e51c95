#!/usr/bin/env bash
# S3-compatible bucket benchmark: a bucket of 100,000 small objects (bench/make-bucket.py, served
# by s3s-fs from .ci/s3) backed up by Coffer's engine (engine-bench backup-bucket: ListObjectsV2
# level by level, one HEAD per object for its metadata, GET of each new or changed object), first
# into an empty vault and then incrementally after ~1% of the objects changed; beside `restic
# backup` of the same objects read from s3s-fs's directory on disk (what plain restic can back
# up of this bucket without an S3 mount) and a plain `rclone sync` copy of the bucket to a local
# directory (first and after the change; `--use-server-modtime`: size and LastModified decide, as
# they do for Coffer). Wall time and peak RSS from GNU time, stored sizes with
# du; medians over --runs runs, each from a fresh vault, restic repository and sync directory
# and from the same bucket content (each run's change is reverted after it).
#
#   bench/bucket-run.sh [--objects 100000] [--runs 3] [--work DIR] [--tools coffer,restic,rclone]
#
# --tools measures only some of the tools (the bucket is kept in DIR between invocations). After
# Coffer's last run its latest recovery point is restored into a directory and compared with the
# bucket's files byte for byte (diff -r); rclone's copy is compared the same way. ENGINE_BENCH names a built engine-bench binary;
# without it the script builds one in release mode.
#
# Needs: restic, GNU time, python3, cargo (s3s-fs is built by .ci/s3 when missing); rclone
# (apt-get install rclone) for the sync copy.
set -euo pipefail

OBJECTS=100000 RUNS=3 WORK=/tmp/coffer-bucket-bench TOOLS=coffer,restic,rclone
while [[ $# -gt 0 ]]; do
  case "$1" in
    --objects) OBJECTS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${ENGINE_BENCH:-} ]] && [[ ,$TOOLS, == *,coffer,* ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  (cd "$ROOT" && cargo build --release -q -p coffer-engine --bin engine-bench)
  ENGINE_BENCH=$CARGO_TARGET_DIR/release/engine-bench
fi
uses() { [[ ,$TOOLS, == *,$1,* ]]; }
if uses restic && ! command -v restic >/dev/null; then
  echo "restic is not installed (apt-get install restic), or leave it out of --tools" >&2
  exit 1
fi
if uses rclone && ! command -v rclone >/dev/null; then
  echo "rclone is not installed (apt-get install rclone), or leave it out of --tools" >&2
  exit 1
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

S3=$WORK/s3
trap '"$ROOT/.ci/s3" stop "$S3" || true' EXIT
eval "$("$ROOT/.ci/s3" start "$S3")"
BUCKET=bench
DATA=$S3/data/$BUCKET
if [[ ! -f $WORK/bucket.done-$OBJECTS ]]; then
  rm -rf "$DATA"
  echo "filling s3://$BUCKET with $OBJECTS objects ..."
  python3 "$ROOT/bench/make-bucket.py" "$DATA" --objects "$OBJECTS" --seed 1
  touch "$WORK/bucket.done-$OBJECTS"
fi
echo "bucket: $(find "$DATA" -type f | wc -l) objects, $(du -sm --apparent-size "$DATA" | cut -f1) MiB"

export COFFER_BENCH_S3_ENDPOINT=$COFFER_TEST_S3_ENDPOINT
export COFFER_BENCH_S3_ACCESS_KEY=$COFFER_TEST_S3_ACCESS_KEY
export COFFER_BENCH_S3_SECRET_KEY=$COFFER_TEST_S3_SECRET_KEY
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ENDPOINT=$COFFER_TEST_S3_ENDPOINT RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$COFFER_TEST_S3_ACCESS_KEY
export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$COFFER_TEST_S3_SECRET_KEY
export RESTIC_PASSWORD=bench-password
kib() { du -sk "$1" | cut -f1; }
# rclone cannot load AWS_CA_BUNDLE into its HTTP transport (and needs no CA for http://).
SYNC_COPY=(env -u AWS_CA_BUNDLE rclone sync --use-server-modtime "bench:$BUCKET" "$WORK/sync")

for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/vault" "$WORK/state" "$WORK/restic" "$WORK/sync" "$WORK/restored"
  if uses coffer; then
    "$ENGINE_BENCH" init "$WORK/state" "$WORK/vault" >/dev/null
    measure first coffer "$run" "$ENGINE_BENCH" backup-bucket "$WORK/state" "$WORK/vault" "$BUCKET" rp1
    record size-first coffer "$run" "$(kib "$WORK/vault")"
  fi
  if uses restic; then
    restic init -q -r "$WORK/restic" >/dev/null
    measure first restic "$run" restic -q -r "$WORK/restic" backup "$DATA"
    record size-first restic "$run" "$(kib "$WORK/restic")"
  fi
  if uses rclone; then
    measure first rclone "$run" "${SYNC_COPY[@]}"
    record size-first rclone "$run" "$(kib "$WORK/sync")"
  fi
  python3 "$ROOT/bench/make-bucket.py" "$DATA" --mutate --percent 1 --seed $((run + 1))
  if uses coffer; then
    measure incremental coffer "$run" "$ENGINE_BENCH" backup-bucket "$WORK/state" "$WORK/vault" "$BUCKET" rp2
    record size-both coffer "$run" "$(kib "$WORK/vault")"
    if [[ $run = "$RUNS" ]]; then
      # The latest recovery point must hold the bucket as it is now, byte for byte.
      "$ENGINE_BENCH" restore "$WORK/state" "$WORK/vault" "$WORK/restored" >/dev/null
      diff -r "$DATA" "$WORK/restored" >/dev/null ||
        { echo "the restored recovery point differs from the bucket" >&2; exit 1; }
      echo "restore of Coffer's latest recovery point equals the bucket (diff -r)"
    fi
  fi
  if uses restic; then
    measure incremental restic "$run" restic -q -r "$WORK/restic" backup "$DATA"
    record size-both restic "$run" "$(kib "$WORK/restic")"
  fi
  if uses rclone; then
    measure incremental rclone "$run" "${SYNC_COPY[@]}"
    diff -r "$DATA" "$WORK/sync" >/dev/null || { echo "the rclone copy differs from the bucket" >&2; exit 1; }
  fi
  python3 "$ROOT/bench/make-bucket.py" "$DATA" --mutate --percent 1 --seed $((run + 1)) --revert
done

echo
echo "Medians over $RUNS runs ($OBJECTS objects):"
medians
