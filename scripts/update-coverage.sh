#!/usr/bin/env bash
# Rewrites the operations coverage table in README.md from `coffer coverage`, which reads it
# off the code (every operation is probed on a throwaway instance).
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(cargo run -q -p coffer-server -- coverage)
python3 - "$table" <<'PY'
import sys, re
table = sys.argv[1].rstrip("\n") + "\n"
readme = open("README.md").read()
start, end = "<!-- coverage:start -->\n", "<!-- coverage:end -->"
a, b = readme.index(start) + len(start), readme.index(end)
open("README.md", "w").write(readme[:a] + table + readme[b:])
PY
echo "README.md coverage table updated"
