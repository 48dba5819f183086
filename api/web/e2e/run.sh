#!/usr/bin/env bash
# Browser test of the pushd console and pushd.js.
#
#   api/web/e2e/run.sh
#
# Needs Go, Node >= 20 and Chromium (Debian: apt-get install -y chromium). Builds pushd from the
# repository root, writes a temporary config (a free port on 127.0.0.1, sqlite in a temp dir,
# log.level warn), runs `npm ci` when node_modules is missing, then `node --test` on the unit
# tests of pushd.js and on the browser test. The browser test starts the server itself, because
# it stops and restarts it on the same port and store; this script kills whatever is left.
# Exits non-zero when anything fails.
#
# Environment: SCREENSHOT_DIR (default: a new temp dir, printed), DOCS_SCREENSHOT (also save the
# console screenshot there, e.g. docs/console.png), CHROMIUM (default /usr/bin/chromium),
# PUSHD_BIN (use this binary instead of building one).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pushd-e2e.XXXXXX")
pidfile=$tmp/pushd.pid

cleanup() {
  if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "run.sh: no Chromium at $CHROMIUM (Debian: apt-get install -y chromium; or set CHROMIUM)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "run.sh: node (>= 20) is required" >&2; exit 1; }

if [ -z "${PUSHD_BIN:-}" ]; then
  echo "building pushd"
  (cd "$root" && go build -o "$tmp/pushd" .)
  PUSHD_BIN=$tmp/pushd
fi
export PUSHD_BIN

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export PUSHD_ADDR=127.0.0.1:$port
export PUSHD_CONFIG=$tmp/config.yaml
export PUSHD_PIDFILE=$pidfile
cat >"$PUSHD_CONFIG" <<EOF
server:
  addr: "$PUSHD_ADDR"
  shutdownTimeout: 5s
store:
  driver: sqlite
  path: "$tmp/data/push.db"
log:
  level: warn
EOF

export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pushd-screenshots.XXXXXX")}
mkdir -p "$SCREENSHOT_DIR"
if [ -n "${DOCS_SCREENSHOT:-}" ]; then
  DOCS_SCREENSHOT=$(cd "$(dirname "$DOCS_SCREENSHOT")" && pwd)/$(basename "$DOCS_SCREENSHOT")
  export DOCS_SCREENSHOT
fi

cd "$here"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi

echo "pushd on $PUSHD_ADDR, screenshots in $SCREENSHOT_DIR"
node --test --test-concurrency=1 pushd.test.mjs console.test.mjs
