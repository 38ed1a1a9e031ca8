#!/usr/bin/env bash
# Stand-ins for the Dockerfile's two public base images, built from Debian 12
# packages for machines that cannot pull them (CI here reaches Debian, not
# Docker Hub or gcr.io). Each is imported into podman's local storage:
#
#   localhost/fnlk-base/debian:12-slim            for BUILD_IMAGE   (debian:12-slim)
#   localhost/fnlk-base/python3-debian12:nonroot  for RUNTIME_IMAGE (gcr.io/distroless/python3-debian12:nonroot)
#
# The runtime stand-in has what distroless has and nothing it lacks: Debian's
# python3.11 at /usr/bin/python3, CA certificates, tzdata, the user and group
# nonroot (65532) with home /home/nonroot, and no shell, apt or dpkg, so an
# image that needs a shell or a package manager fails here as it would there.
# Each is rebuilt only when this script changes. Usage: tools/image/bases.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
stamp=$(sha256sum "$0" | cut -c1-12)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { echo "bases.sh: $*" >&2; }

# have IMAGE: the image exists and was built by this version of the script.
have() {
  [[ $(podman image inspect --format '{{ index .Labels "fnlk.base.stamp" }}' "$1" 2>/dev/null) == "$stamp" ]]
}

# build IMAGE TARBALL-COMMAND... : import a root filesystem with a label and config.
import() {
  local image=$1 tar=$2; shift 2
  podman import --change "LABEL fnlk.base.stamp=$stamp" "$@" "$tar" "$image" >/dev/null
  log "imported $image"
}

build_slim() {
  local image=localhost/fnlk-base/debian:12-slim
  have "$image" && return
  local started=$SECONDS
  mmdebstrap --quiet --variant=minbase bookworm "$work/slim.tar" "$mirror"
  import "$image" "$work/slim.tar" --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  log "built $image in $((SECONDS - started)) s"
}

build_distroless() {
  local image=localhost/fnlk-base/python3-debian12:nonroot
  have "$image" && return
  local started=$SECONDS
  # Distroless' passwd and group entries; then everything a shell or a
  # package manager would need goes, as distroless has none of it.
  mmdebstrap --quiet --variant=minbase --include=python3,ca-certificates,tzdata,netbase \
    --customize-hook='echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" >>"$1/etc/passwd"' \
    --customize-hook='echo "nonroot:x:65532:" >>"$1/etc/group"' \
    --customize-hook='mkdir -p "$1/home/nonroot" && chown 65532:65532 "$1/home/nonroot" && chmod 700 "$1/home/nonroot"' \
    bookworm "$work/distroless" "$mirror"
  # mmdebstrap's own clean-up needs apt, so the removal comes after it.
  (cd "$work/distroless" && rm -rf var/lib/apt var/cache/apt etc/apt var/lib/dpkg usr/share/doc \
    usr/share/man usr/share/info && cd usr/bin && rm -f sh bash dash rbash apt apt-get apt-cache \
    apt-config apt-mark dpkg dpkg-deb dpkg-query dpkg-divert dpkg-split dpkg-trigger su login)
  tar -C "$work/distroless" --numeric-owner -cf "$work/distroless.tar" .
  import "$image" "$work/distroless.tar" --change 'USER 65532:65532' \
    --change 'WORKDIR /home/nonroot' --change 'ENTRYPOINT ["/usr/bin/python3.11"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
  log "built $image in $((SECONDS - started)) s"
}

build_slim &
slim=$!
build_distroless
wait "$slim"
