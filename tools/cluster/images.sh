#!/usr/bin/env bash
# The test node's images, built with podman from the binaries build.sh made
# (no image can be pulled here) and saved as docker-archive tarballs into
# OUTDIR, for the node's containerd to import:
#
#   pause.tar          the pod sandbox (pause/)
#   crossplane.tar     Crossplane core, laid out as its official image
#   provider-http.tar  provider-http, its package's runtime
#   coredns.tar        the cluster DNS
#
# Each is based on the distroless stand-in (tools/image/bases.sh) and
# rebuilt only when its binary or Containerfile changes.
# Usage: tools/cluster/images.sh [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${CLUSTER_BIN:-$root/.tools/bin}
out=$(mkdir -p "${1:-$root/.tools/images}" && cd "${1:-$root/.tools/images}" && pwd)
base=localhost/fnlk-base/python3-debian12:nonroot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { echo "images.sh: $*" >&2; }

# image NAME FILE...: build localhost/fnlk/NAME:dev from Containerfile.NAME and FILEs.
image() {
  local name=$1 ctx="$work/image-$1" stamp want; shift
  mkdir -p "$ctx"
  cp -r "$@" "$ctx/"
  cp "$here/images/Containerfile.$name" "$ctx/Containerfile"
  want=$(cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  stamp="$out/.$name.stamp"
  if [[ -f $out/$name.tar && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return
  fi
  podman --runtime runc build --build-arg BASE=$base --tag "localhost/fnlk/$name:dev" "$ctx" >/dev/null
  rm -f "$out/$name.tar"
  podman save --format docker-archive --output "$out/$name.tar" "localhost/fnlk/$name:dev" >/dev/null 2>&1
  echo "$want" >"$stamp"
  log "built localhost/fnlk/$name:dev"
}

bash "$root/tools/image/bases.sh"
files="$work/files"
mkdir -p "$files"
(cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$files/pause" .)
image pause "$files/pause"
crossplane=$(cd "$root/tools/crossplane" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/crossplane/crossplane/v2)
cp "$bin/crossplane-core" "$files/crossplane"
image crossplane "$files/crossplane" "$crossplane/cluster/crds" "$crossplane/cluster/webhookconfigurations"
cp "$bin/provider-http" "$files/provider"
image provider-http "$files/provider"
image coredns "$bin/coredns"
