#!/usr/bin/env bash
# Build the Crossplane CLI pinned in go.mod into .tools/bin/crossplane (once).
# v2.2.0 is the newest release whose module still carries cmd/crank.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../.tools/bin/crossplane}
if [[ -x $out ]]; then exit 0; fi
command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cd "$here"
GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" github.com/crossplane/crossplane/v2/cmd/crank
mv "$out.tmp" "$out"
echo "build.sh: built $out" >&2
