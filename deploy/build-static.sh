#!/bin/sh
# Builds the static pushlane binary exactly as the container image does (the Dockerfile runs this
# script, and so does the CI test that starts the binary from an empty directory):
#
#   deploy/build-static.sh OUTPUT
#
# CGO_ENABLED=0 (no libc: runs on scratch or distroless), -trimpath, stripped, with the version
# and commit stamped for `pushlane version`. VERSION and COMMIT come from the environment, else
# from git (`git describe --tags --dirty`, `git rev-parse HEAD`), else "dev" and "unknown".
set -eu

out=${1:?usage: deploy/build-static.sh OUTPUT}
case $out in
  /*) ;;
  *) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}

CGO_ENABLED=0 go build -trimpath -buildvcs=false \
  -ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
  -o "$out" .
echo "built $out ($version, commit $commit)"
