#!/usr/bin/env bash
# Runs moto's own server-mode tests (conformance/moto/) against a fresh `coffer serve --dev`
# on a free port of 127.0.0.1. Installs the pinned moto and pytest when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO_VERSION=5.2.5
if ! python3 -c "import moto, pytest, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  # A Debian system Python marks itself externally managed; the packages go in all the same.
  python3 -m pip install -q "moto==$MOTO_VERSION" pytest ||
    python3 -m pip install -q --break-system-packages "moto==$MOTO_VERSION" pytest
fi
bin=${COFFER_BIN:-target/debug/coffer}
[ -x "$bin" ] || cargo build -q -p coffer-server
out=$(mktemp)
"$bin" serve --dev --listen 127.0.0.1:0 >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
endpoint=""
for _ in $(seq 1 100); do
  endpoint=$(sed -n 's/^Coffer listening on //p' "$out" | head -1)
  [ -n "$endpoint" ] && break
  sleep 0.1
done
[ -n "$endpoint" ] || { echo "coffer did not start" >&2; exit 1; }
echo "moto $MOTO_VERSION server-mode tests against Coffer at $endpoint"
TEST_SERVER_MODE=true TEST_SERVER_MODE_ENDPOINT="$endpoint" \
  AWS_ACCESS_KEY_ID=FOOBARKEY AWS_SECRET_ACCESS_KEY=FOOBARSECRET AWS_DEFAULT_REGION=us-east-1 \
  python3 -m pytest -q -p no:cacheprovider conformance/moto/
