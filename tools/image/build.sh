#!/usr/bin/env bash
# Build the function's image from the Dockerfile without a Docker engine:
# podman (runc, host network) on the stand-in bases from tools/image/bases.sh,
# with this machine's CA as the build secret `ca`. Writes the image as a
# docker-archive tarball, which `crossplane xpkg build
# --embed-runtime-image-tarball` embeds (tools/crossplane/build-packages.sh).
#
#   tools/image/build.sh [OUT.tar]    default dist/function-image.tar
#
# Users with Docker build the same Dockerfile on its public bases:
#   docker build -t function-litellm-keys .
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/dist/function-image.tar}
tag=${IMAGE_TAG:-localhost/litellm/function-litellm-keys:dev}
ca=${IMAGE_CA:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$(dirname "$out")"

bash "$root/tools/image/bases.sh"
started=$SECONDS
# runc: crun refuses hybrid cgroups; podman's default ulimits are refused here.
podman --runtime runc build --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --build-arg BUILD_IMAGE=localhost/fnlk-base/debian:12-slim \
  --build-arg RUNTIME_IMAGE=localhost/fnlk-base/python3-debian12:nonroot \
  ${ca:+--secret id=ca,src="$ca"} --layers --tag "$tag" --file "$root/Dockerfile" "$root" >&2
rm -f "$out"
podman save --format docker-archive --output "$out" "$tag" >&2
echo "build.sh: built $tag into $out in $((SECONDS - started)) s" >&2
