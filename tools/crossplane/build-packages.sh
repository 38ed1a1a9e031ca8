#!/usr/bin/env bash
# Build the two Crossplane packages into OUTDIR (default dist/):
#   configuration.xpkg  crossplane.yaml + the v2 XRD and Composition from examples/
#   function.xpkg       package/ (metadata and input CRD); pass an image as $2 to embed
#                       the runtime, e.g. one built from the Dockerfile
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
cp "$root/examples/definition.yaml" "$root/examples/composition.yaml" \
  "$root/examples/user-definition.yaml" "$root/examples/user-composition.yaml" \
  "$root/examples/team-definition.yaml" "$root/examples/team-composition.yaml" \
  "$stage/configuration/apis/"
cp "$root/examples/virtualkey.yaml" "$root/examples/virtualkey-advanced.yaml" \
  "$root/examples/user.yaml" "$root/examples/team.yaml" "$root/examples/virtualkey-team.yaml" \
  "$stage/configuration/examples/"
"$cli" xpkg build --package-root="$stage/configuration" \
  --examples-root="$stage/configuration/examples" --package-file="$out/configuration.xpkg"

mkdir -p "$stage/function"
cp -r "$root/package/." "$stage/function/"
"$cli" xpkg build --package-root="$stage/function" --examples-root="$stage/function/none" \
  --package-file="$out/function.xpkg" ${runtime:+--embed-runtime-image="$runtime"}
echo "built $out/configuration.xpkg $out/function.xpkg" >&2
