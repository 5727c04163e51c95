#!/usr/bin/env bash
# Engine benchmark: Coffer's engine (engine-bench) side by side with restic on the same data in
# the same run. Measures first backup, unchanged second backup, backup after the dataset's
# "next day" mutation, full restore, repository size and peak RSS; prints medians.
#
#   bench/engine/run.sh [--size-mib 1024] [--files 5000] [--runs 3] [--work DIR]
#
# Needs: restic, GNU time (/usr/bin/time), python3; builds engine-bench in release mode.
set -euo pipefail

SIZE=1024 FILES=5000 RUNS=3 WORK=/tmp/coffer-engine-bench
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mib) SIZE=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATASET_SCRIPT=${DATASET_SCRIPT:-$ROOT/bench/make-dataset.py}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p coffer-engine --bin engine-bench)
BENCH=$CARGO_TARGET_DIR/release/engine-bench
command -v restic >/dev/null || { echo "restic not installed (apt-get install restic)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "GNU time not installed (apt-get install time)" >&2; exit 1; }

mkdir -p "$WORK"
DS=$WORK/dataset
if [[ ! -f $WORK/dataset.done-$SIZE-$FILES ]]; then
  rm -rf "$DS"; python3 "$DATASET_SCRIPT" "$DS" --size-mib "$SIZE" --files "$FILES" --seed 1
  touch "$WORK/dataset.done-$SIZE-$FILES"
fi
RESULTS=$WORK/results.tsv
: > "$RESULTS"
export RESTIC_PASSWORD=bench-password

# measure NAME TOOL RUN CMD...: runs CMD under /usr/bin/time, records seconds and peak RSS (KiB).
measure() {
  local name=$1 tool=$2 run=$3; shift 3
  sync
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1 || { cat "$WORK/out.txt" >&2; exit 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$tool" "$run" "$secs" "$rss" >> "$RESULTS"
  printf '%-10s %-7s run %s: %6.2f s  %7d KiB\n' "$name" "$tool" "$run" "$secs" "$rss"
}

for run in $(seq 1 "$RUNS"); do
  SRC=$WORK/src; rm -rf "$SRC" "$WORK"/coffer-* "$WORK"/restic-* "$WORK/state"
  cp -a "$DS" "$SRC"
  "$BENCH" init "$WORK/state" "$WORK/coffer-vault" > /dev/null
  restic init -q -r "$WORK/restic-repo" > /dev/null
  measure first coffer "$run" "$BENCH" backup "$WORK/state" "$WORK/coffer-vault" "$SRC" rp-1
  measure first restic "$run" restic -q -r "$WORK/restic-repo" backup "$SRC"
  measure unchanged coffer "$run" "$BENCH" backup "$WORK/state" "$WORK/coffer-vault" "$SRC" rp-2
  measure unchanged restic "$run" restic -q -r "$WORK/restic-repo" backup "$SRC"
  python3 "$DATASET_SCRIPT" "$SRC" --mutate --seed $((run + 1))
  measure mutated coffer "$run" "$BENCH" backup "$WORK/state" "$WORK/coffer-vault" "$SRC" rp-3
  measure mutated restic "$run" restic -q -r "$WORK/restic-repo" backup "$SRC"
  measure restore coffer "$run" "$BENCH" restore "$WORK/state" "$WORK/coffer-vault" "$WORK/coffer-restore"
  measure restore restic "$run" restic -q -r "$WORK/restic-repo" restore latest --target "$WORK/restic-restore"
  # Both restores must equal the mutated source.
  diff -r "$SRC" "$WORK/coffer-restore" > /dev/null || { echo "coffer restore differs" >&2; exit 1; }
  diff -r "$SRC" "$WORK/restic-restore/$SRC" > /dev/null || { echo "restic restore differs" >&2; exit 1; }
  printf 'size\tcoffer\t%s\t%s\t0\n' "$run" "$(du -sk "$WORK/coffer-vault" | cut -f1)" >> "$RESULTS"
  printf 'size\trestic\t%s\t%s\t0\n' "$run" "$(du -sk "$WORK/restic-repo" | cut -f1)" >> "$RESULTS"
done

echo
echo "Medians over $RUNS runs (${SIZE} MiB, ${FILES} files):"
python3 - "$RESULTS" <<'PY'
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
d = collections.defaultdict(list)
for name, tool, run, val, rss in rows:
    d[(name, tool)].append((float(val), int(rss)))
print("| step | coffer | restic | coffer/restic | coffer peak RSS | restic peak RSS | RSS ratio |")
print("|---|---|---|---|---|---|---|")
for name in ["first", "unchanged", "mutated", "restore", "size"]:
    c = d.get((name, "coffer")); r = d.get((name, "restic"))
    if not c or not r: continue
    cm = statistics.median(v for v, _ in c); rm = statistics.median(v for v, _ in r)
    if name == "size":
        print(f"| repo size | {cm/1024:.0f} MiB | {rm/1024:.0f} MiB | {cm/rm:.2f} | | | |")
        continue
    cr = statistics.median(x for _, x in c); rr = statistics.median(x for _, x in r)
    print(f"| {name} | {cm:.2f} s | {rm:.2f} s | {cm/rm:.2f} | {cr/1024:.0f} MiB | {rr/1024:.0f} MiB | {cr/rr:.2f} |")
PY
