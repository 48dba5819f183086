#!/usr/bin/env bash
# Browser test of the pushlane console and pushlane.js.
#
#   api/web/e2e/run.sh [TEST_FILE...]     (default: every test file)
#
# Needs Go, Node >= 20 and Chromium (Debian: apt-get install -y chromium). Builds pushlane from the
# repository root, writes a temporary config (a free port on 127.0.0.1, sqlite in a temp dir,
# log.level warn), runs `npm ci` when node_modules lacks a dependency, then `node --test` on the
# unit tests of pushlane.js (pushlane.test.mjs), the package checks (package.test.mjs: Node import,
# TypeScript, a vite build, the served file), and the browser tests (client.test.mjs for
# pushlane.js, console.test.mjs for the console). The browser tests start the server themselves,
# because they stop and restart it on the same port and store; this script kills whatever is left.
# Exits non-zero when anything fails.
#
# Environment: SCREENSHOT_DIR (default: a new temp dir, printed), DOCS_SCREENSHOT (also save the
# console screenshot there, e.g. docs/console.png), CHROMIUM (default /usr/bin/chromium),
# PUSHLANE_BIN (use this binary instead of building one).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pushlane-e2e.XXXXXX")
pidfile=$tmp/pushlane.pid

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

if [ -z "${PUSHLANE_BIN:-}" ]; then
  echo "building pushlane"
  (cd "$root" && go build -o "$tmp/pushlane" .)
  PUSHLANE_BIN=$tmp/pushlane
fi
export PUSHLANE_BIN

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export PUSHLANE_ADDR=127.0.0.1:$port
export PUSHLANE_CONFIG=$tmp/config.yaml
export PUSHLANE_PIDFILE=$pidfile
export PUSHLANE_TMP=$tmp
cat >"$PUSHLANE_CONFIG" <<EOF
server:
  addr: "$PUSHLANE_ADDR"
  shutdownTimeout: 5s
store:
  driver: sqlite
  path: "$tmp/data/push.db"
log:
  level: warn
EOF

export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pushlane-screenshots.XXXXXX")}
mkdir -p "$SCREENSHOT_DIR"
if [ -n "${DOCS_SCREENSHOT:-}" ]; then
  DOCS_SCREENSHOT=$(cd "$(dirname "$DOCS_SCREENSHOT")" && pwd)/$(basename "$DOCS_SCREENSHOT")
  export DOCS_SCREENSHOT
fi

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/vite ] || [ ! -d node_modules/typescript ]; then
  npm ci --no-audit --no-fund
fi

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(pushlane.test.mjs package.test.mjs client.test.mjs console.test.mjs webpush.test.mjs)
fi
echo "pushlane on $PUSHLANE_ADDR, screenshots in $SCREENSHOT_DIR"
node --test --test-concurrency=1 "${tests[@]}"
