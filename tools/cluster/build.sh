#!/usr/bin/env bash
# Build the real control plane the end-to-end suite runs, into .tools/bin:
#
#   kube-apiserver, kube-controller-manager, kubectl   k8s.io/kubernetes v1.34.4 (kube/)
#   kube-scheduler, kubelet, kube-proxy                the same module, for the node (node.sh)
#   coredns                                            CoreDNS v1.12.4 (coredns/), the node's DNS
#   helm                                               Helm v4.3.2 (helm/), renders Crossplane's chart
#   crossplane-core                                    Crossplane v2.2.0 core (../crossplane/)
#   crossplane                                         the Crossplane CLI, same module
#   provider-http                                      provider-http v1.0.14 (provider-http/)
#   registry                                           go-containerregistry v0.22.1 (registry/)
#
# and installs etcd (Debian's etcd-server) when it is missing. Everything
# comes from the Go module proxy and Debian; each binary is rebuilt only when
# its module's go.sum changes (a stamp beside it), so a warm run takes a
# second. Usage: tools/cluster/build.sh [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/.tools/bin}
mkdir -p "$out"
command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 1; }
export GOFLAGS=-mod=mod

kube_version=v1.34.4
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$kube_version
  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34
  -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
# Without the version, packages fail with "incompatible Crossplane version".
crossplane_ldflags="-X github.com/crossplane/crossplane/v2/internal/version.version=v2.2.0"

# build NAME MODULE_DIR PACKAGE [LDFLAGS]
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-} stamp want
  stamp="$out/.$name.stamp"
  want=$(cat "$dir/go.sum" <(echo "$pkg $ldflags") | sha256sum | cut -d' ' -f1)
  if [[ -x $out/$name && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return
  fi
  echo "build.sh: building $name ($pkg)" >&2
  local started=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "$want" >"$stamp"
  echo "build.sh: built $name in $((SECONDS - started)) s" >&2
}

build kube-apiserver "$here/kube" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube-controller-manager "$here/kube" k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kubectl "$here/kube" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
build kube-scheduler "$here/kube" k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kubelet "$here/kube" k8s.io/kubernetes/cmd/kubelet "$kube_ldflags"
build kube-proxy "$here/kube" k8s.io/kubernetes/cmd/kube-proxy "$kube_ldflags"
build coredns "$here/coredns" github.com/coredns/coredns
build helm "$here/helm" helm.sh/helm/v4/cmd/helm
build crossplane "$here/../crossplane" github.com/crossplane/crossplane/v2/cmd/crank
build crossplane-core "$here/../crossplane" github.com/crossplane/crossplane/v2/cmd/crossplane \
  "$crossplane_ldflags"
build provider-http "$here/provider-http" github.com/crossplane-contrib/provider-http/cmd/provider
build registry "$here/registry" github.com/google/go-containerregistry/cmd/registry

if ! command -v etcd >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "build.sh: etcd is missing; install Debian's etcd-server (as root)" >&2
    exit 1
  fi
  echo "build.sh: installing etcd-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends etcd-server >/dev/null
  # Debian starts its own etcd on 2379; the suite runs its own on free ports.
  systemctl disable --now etcd >/dev/null 2>&1 || service etcd stop >/dev/null 2>&1 || true
fi
echo "build.sh: control plane binaries ready in $out" >&2
