#!/usr/bin/env bash
# Build the two Crossplane packages into OUTDIR (default dist/):
#   configuration.xpkg  crossplane.yaml + the v2 XRDs and Compositions from examples/install/
#                       and examples/accounts/, with the VirtualKey, User and Team examples
#   function.xpkg       package/ (metadata and input CRD); pass an image tarball as $2
#                       to embed the runtime (tools/image/build.sh makes one from the Dockerfile)
# Each package gets a clean staging directory, since `xpkg build` reads every
# YAML file under its root.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
runtime=${2:-}
cli=${CROSSPLANE_CLI:-$root/.tools/bin/crossplane}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/configuration/apis" "$stage/configuration/examples"
cp "$root/crossplane.yaml" "$stage/configuration/crossplane.yaml"
examples=$root/examples
cp "$examples/install/definition.yaml" "$examples/install/composition.yaml" \
  "$examples/accounts/user-definition.yaml" "$examples/accounts/user-composition.yaml" \
  "$examples/accounts/team-definition.yaml" "$examples/accounts/team-composition.yaml" \
  "$stage/configuration/apis/"
cp "$examples/virtualkey/virtualkey.yaml" "$examples/virtualkey/virtualkey-advanced.yaml" \
  "$examples/accounts/user.yaml" "$examples/accounts/team.yaml" \
  "$examples/accounts/virtualkey-team.yaml" "$stage/configuration/examples/"
"$cli" xpkg build --package-root="$stage/configuration" \
  --examples-root="$stage/configuration/examples" --package-file="$out/configuration.xpkg"

mkdir -p "$stage/function"
cp -r "$root/package/." "$stage/function/"
"$cli" xpkg build --package-root="$stage/function" --examples-root="$stage/function/none" \
  --package-file="$out/function.xpkg" ${runtime:+--embed-runtime-image-tarball="$runtime"}
echo "built $out/configuration.xpkg $out/function.xpkg" >&2
