# Shared by the benchmark scripts (sourced, not run): measuring one step with GNU time and
# printing medians of the recorded runs.
#
#   measure STEP TOOL RUN CMD...   runs CMD under /usr/bin/time -v (page cache dropped first
#                                  when the machine allows it), appends
#                                  "STEP TOOL RUN SECONDS PEAK_RSS_KIB" to $RESULTS
#   record STEP TOOL RUN VALUE     appends a value that is not a time (a size in KiB)
#   medians                        prints a Markdown table of the medians per step and tool
#
# Needs $WORK (scratch directory) and $RESULTS (a TSV file) set by the caller.

[[ -x /usr/bin/time ]] || { echo "GNU time not installed (apt-get install time)" >&2; exit 1; }

measure() {
  local step=$1 tool=$2 run=$3; shift 3
  sync
  if [[ -w /proc/sys/vm/drop_caches ]]; then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
  /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>&1 ||
    { echo "$step/$tool failed:" >&2; cat "$WORK/out.txt" "$WORK/time.txt" >&2; exit 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
  printf '%s\t%s\t%s\t%s\t%s\n' "$step" "$tool" "$run" "$secs" "$rss" >>"$RESULTS"
  printf '%-24s %-14s run %s: %8.2f s %8d KiB  %s\n' "$step" "$tool" "$run" "$secs" "$rss" \
    "$(tail -n 1 "$WORK/out.txt" | cut -c1-160)"
}

record() {
  printf '%s\t%s\t%s\t%s\t0\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

medians() {
  python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
order, d = [], collections.defaultdict(list)
for step, tool, run, val, rss in rows:
    if (step, tool) not in d:
        order.append((step, tool))
    d[(step, tool)].append((float(val), int(rss)))
print("| step | tool | runs | median | median peak RSS |")
print("|---|---|---:|---:|---:|")
for step, tool in order:
    v = d[(step, tool)]
    med = statistics.median(x for x, _ in v)
    if step.startswith("size"):
        print("| %s | %s | %d | %.0f MiB | |" % (step, tool, len(v), med / 1024))
    else:
        rss = statistics.median(r for _, r in v)
        print("| %s | %s | %d | %.2f s | %.0f MiB |" % (step, tool, len(v), med, rss / 1024))
PY
}
