#!/usr/bin/env bash
# A control plane with a real node, where everything runs as a platform team
# runs it: in pods, from images and packages.
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler   host processes
#   containerd (runc), kubelet, kube-proxy (iptables), CNI bridge   the node
#   CoreDNS                                                         a Deployment
#   Crossplane core and its RBAC manager                            its Helm chart
#   provider-http, the function with the poller sidecar             their packages, installed
#                                                                   by README.md's install
#                                                                   block, verbatim
#
#   tools/cluster/node.sh up       build (cached), start, install; prints export lines
#   tools/cluster/node.sh down     stop everything up started, unmount, remove its rules
#   tools/cluster/node.sh status   which components run
#
# The packages are pushed to a local registry under the public names; an
# ImageConfig and containerd's mirror configuration point xpkg.crossplane.io at
# it. The node's address is NODE_IP (default 10.200.0.1, added to lo): pods
# reach the API server, the registry and the LiteLLM proxy through it. The proxy
# listens on loopback, so `up` relays NODE_IP:port to LITELLM_URL's port, and
# prints that address as NODE_LITELLM_URL. Needs root, podman, containerd, runc,
# the CNI plugins, iptables and socat (apt-get install them; .ci/run does).
#
# Environment: NODE_STATE_DIR (default ${TMPDIR:-/tmp}/fnlk-node), NODE_IP,
# CLUSTER_TIMEOUT (seconds per wait, default 300), CLUSTER_BIN (default .tools/bin),
# LITELLM_URL (the proxy to relay; optional).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
S=${NODE_STATE_DIR:-${TMPDIR:-/tmp}/fnlk-node}
BIN=${CLUSTER_BIN:-$root/.tools/bin}
IMAGES=$root/.tools/images
TIMEOUT=${CLUSTER_TIMEOUT:-300}
NODE_IP=${NODE_IP:-10.200.0.1}
NODE=fnlk-node
NS=crossplane-system
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
FUNCTION_TAG=v0.1.0

log() { echo "[node] $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=tools/cluster/lib.sh
source "$here/lib.sh"

k() { "$BIN/kubectl" --kubeconfig "$S/admin.kubeconfig" "$@"; }
registry() { echo "$NODE_IP:$(port_of registry)"; }

# --- one-time set-up ------------------------------------------------------------------
kubeconfig() { # FILE TOKEN [CERT KEY]
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: node
    cluster: {server: "https://$NODE_IP:$(port_of apiserver)", certificate-authority: "$S/pki/apiserver.crt"}
users:
  - name: user
    user: {token: "$2"}
contexts:
  - name: node
    context: {cluster: node, user: user}
current-context: node
EOF
  chmod 600 "$1"
}

pki() {
  local p="$S/pki" admin kubelet proxy
  mkdir -p "$p"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  admin=$(openssl rand -hex 24) kubelet=$(openssl rand -hex 24) proxy=$(openssl rand -hex 24)
  printf '%s,admin,admin,system:masters\n%s,system:node:%s,%s,system:nodes\n%s,system:kube-proxy,kube-proxy\n' \
    "$admin" "$kubelet" "$NODE" "$NODE" "$proxy" >"$p/tokens.csv"
  # The kubelet trusts this CA for the API server's client certificate (logs, exec).
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=fnlk-node-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$p/kubelet-client.key" -out "$p/kubelet-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$p/client.cnf"
  openssl x509 -req -in "$p/kubelet-client.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 2 -extfile "$p/client.cnf" -out "$p/kubelet-client.crt" 2>/dev/null
  chmod 600 "$p"/*.key "$p/tokens.csv"
  echo "$admin $kubelet $proxy" >"$p/.tokens"
}

network() {
  ip -4 addr show dev lo | grep -q " $NODE_IP/" || ip addr add "$NODE_IP/32" dev lo
  sysctl -qw net.ipv4.ip_forward=1
  # Bridged pod traffic must pass kube-proxy's rules; the module may be built in.
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || modprobe br_netfilter 2>/dev/null || true
  [[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || sysctl -qw net.bridge.bridge-nf-call-iptables=1
  mkdir -p "$S/cni" "$S/certs.d/$(registry)"
  cat >"$S/cni/10-fnlk.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "fnlk",
  "plugins": [
    {"type": "bridge", "bridge": "fnlk-cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$S/cni-ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
  # The package registry speaks plain HTTP, as a registry on a private address
  # may, and mirrors xpkg.crossplane.io (the poller sidecar names the public image).
  mkdir -p "$S/certs.d/xpkg.crossplane.io"
  cat >"$S/certs.d/$(registry)/hosts.toml" <<EOF
server = "http://$(registry)"
[host."http://$(registry)"]
  capabilities = ["pull", "resolve"]
EOF
  cat >"$S/certs.d/xpkg.crossplane.io/hosts.toml" <<EOF
server = "https://xpkg.crossplane.io"
[host."http://$(registry)"]
  capabilities = ["pull", "resolve"]
EOF
}

# --- the control plane ----------------------------------------------------------------
start_apiserver() {
  # Its self-signed serving certificate names NODE_IP and the Service 10.96.0.1,
  # so pods verify it with the CA the controller-manager puts in their tokens.
  spawn apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$(port_of etcd)" \
    --cert-dir "$S/pki" --secure-port "$(port_of apiserver)" --bind-address 0.0.0.0 \
    --advertise-address "$NODE_IP" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$S/pki/sa.pub" --service-account-signing-key-file "$S/pki/sa.key" \
    --token-auth-file "$S/pki/tokens.csv" --authorization-mode Node,RBAC \
    --service-cluster-ip-range "$SERVICE_CIDR" --enable-priority-and-fairness=false \
    --kubelet-client-certificate "$S/pki/kubelet-client.crt" --kubelet-client-key "$S/pki/kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP
  wait_for apiserver k get --raw /readyz
}

start_controller_manager() {
  spawn controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$S/admin.kubeconfig" --leader-elect=false --secure-port 0 \
    --use-service-account-credentials --service-account-private-key-file "$S/pki/sa.key" \
    --root-ca-file "$S/pki/apiserver.crt"
}

start_scheduler() {
  spawn scheduler "$BIN/kube-scheduler" --kubeconfig "$S/admin.kubeconfig" \
    --leader-elect=false --secure-port 0
}

# relay NAME PORT TARGET: NODE_IP:PORT forwards to TARGET, a server on loopback.
relay() {
  spawn "$1" socat "TCP-LISTEN:$2,bind=$NODE_IP,fork,reuseaddr" "TCP:$3"
}

# The registry listens on loopback only; the node and Crossplane's pod pull through NODE_IP.
start_registry() {
  spawn registry "$BIN/registry" -port "$(port_of registry-loopback)"
  relay registry-relay "$(port_of registry)" "127.0.0.1:$(port_of registry-loopback)"
  wait_for registry curl -sf "http://$(registry)/v2/"
}

# So does the LiteLLM proxy.
start_litellm_relay() {
  [[ -n ${LITELLM_URL:-} ]] || return 0
  local target=${LITELLM_URL#*://}
  relay litellm-relay "$(port_of litellm)" "${target%%/*}"
}

# --- the node -------------------------------------------------------------------------
start_containerd() {
  cat >"$S/containerd.toml" <<EOF
version = 2
root = "$S/containerd/root"
state = "$S/containerd/state"
[grpc]
  address = "$S/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/fnlk/pause:dev"
  # Lowering a process's OOM score is refused here; kubelet asks for it.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc, not crun: crun refuses this machine's hybrid cgroups.
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$S/certs.d"
EOF
  spawn containerd containerd --config "$S/containerd.toml"
  wait_for containerd ctr --address "$S/containerd.sock" version
  local image
  for image in pause crossplane provider-http coredns; do
    ctr --address "$S/containerd.sock" -n k8s.io images import "$IMAGES/$image.tar" >/dev/null
  done
}

start_kubelet() {
  cat >"$S/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 with a v2 hierarchy mounted beside it (hybrid): kubelet 1.34 refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$S/containerd.sock
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: /etc/resolv.conf
address: $NODE_IP
port: $(port_of kubelet)
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(port_of kubelet-healthz)
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$S/pki/ca.crt"}
authorization: {mode: Webhook}
podCIDR: $POD_CIDR
maxPods: 60
# A shared machine's disk and memory are not this node's to police.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
enforceNodeAllocatable: []
EOF
  spawn kubelet "$BIN/kubelet" --config "$S/kubelet.yaml" --kubeconfig "$S/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$S/kubelet" --cert-dir "$S/kubelet/pki"
  wait_for "kubelet node Ready" bash -c \
    "'$BIN/kubectl' --kubeconfig '$S/admin.kubeconfig' get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
}

start_kube_proxy() {
  cat >"$S/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$S/kube-proxy.kubeconfig"}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$(port_of kube-proxy-healthz)
metricsBindAddress: 127.0.0.1:$(port_of kube-proxy-metrics)
# The machine's conntrack settings are not this node's to change.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  spawn kube-proxy "$BIN/kube-proxy" --config "$S/kube-proxy.yaml"
  wait_for kube-proxy curl -sf "http://127.0.0.1:$(port_of kube-proxy-healthz)/healthz"
}

# --- what runs in pods ----------------------------------------------------------------
install_dns() {
  sed -e "s/@DNS_IP@/$DNS_IP/" "$here/node/coredns.yaml" | k apply -f - >/dev/null
  wait_for "coredns rollout" k rollout status -n kube-system deployment/coredns --timeout 5s
}

install_crossplane() {
  local chart
  chart=$(cd "$root/tools/crossplane" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/crossplane/crossplane/v2)/cluster/charts/crossplane
  k create namespace $NS >/dev/null 2>&1 || true
  # The chart as published, with the locally built image. Faster circuit breaker
  # refills keep Teams with members from being throttled, as on the host plane.
  "$BIN/helm" template crossplane "$chart" --namespace $NS \
    --set image.repository=localhost/fnlk/crossplane --set image.tag=dev \
    --set image.pullPolicy=Never --set 'args={--circuit-breaker-refill-rate=12}' \
    >"$S/crossplane.yaml"
  k apply -f "$S/crossplane.yaml" >/dev/null
  wait_for "crossplane rollout" k rollout status -n $NS deployment/crossplane --timeout 5s
  wait_for "crossplane-rbac-manager rollout" k rollout status -n $NS deployment/crossplane-rbac-manager --timeout 5s
}

# The two packages, each with its runtime image embedded, pushed where the
# public ones are published, under this registry: Crossplane's ImageConfig
# rewrites xpkg.crossplane.io/ to it, and containerd mirrors it, as a platform
# with a private mirror has it. The shipped files then name the public packages.
push_packages() {
  local dir stage
  dir=$(cd "$here/provider-http" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/crossplane-contrib/provider-http)
  stage=$(mktemp -d)
  cp -r "$dir/package/." "$stage/"
  chmod -R u+w "$stage"
  "$BIN/crossplane" xpkg build --package-root "$stage" --examples-root "$stage/none" \
    --embed-runtime-image-tarball "$IMAGES/provider-http.tar" --package-file "$S/xpkg/provider-http.xpkg" \
    >>"$S/logs/xpkg.log" 2>&1
  rm -rf "$stage"
  CROSSPLANE_CLI="$BIN/crossplane" bash "$root/tools/crossplane/build-packages.sh" "$S/xpkg" \
    "$IMAGES/function.tar" 2>>"$S/logs/xpkg.log"
  "$BIN/crossplane" xpkg push -f "$S/xpkg/provider-http.xpkg" \
    "$(registry)/crossplane-contrib/provider-http:v1.0.14" >>"$S/logs/xpkg.log" 2>&1 \
    && "$BIN/crossplane" xpkg push -f "$S/xpkg/function.xpkg" \
      "$(registry)/litellm/function-litellm-keys:$FUNCTION_TAG" >>"$S/logs/xpkg.log" 2>&1 \
    || { tail -n 20 "$S/logs/xpkg.log" >&2; die "xpkg push failed"; }
  k apply -f - >/dev/null <<EOF
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata:
  name: local-mirror
spec:
  matchImages:
    - {type: Prefix, prefix: xpkg.crossplane.io/}
  rewriteImage:
    prefix: $(registry)/
EOF
}

# The README's install block, verbatim; provider-http then polls every 5 s, as
# on the host plane (its default is 1 m).
install_readme() {
  local block
  block=$(awk '/^## Install$/ {on = 1} on && /^```bash$/ {grab = 1; next} grab && /^```$/ {exit} grab' "$root/README.md")
  [[ -n $block ]] || die "no bash block under README.md's ## Install"
  (cd "$root" && KUBECONFIG="$S/admin.kubeconfig" PATH="$BIN:$PATH" bash -euo pipefail -c "$block") \
    >>"$S/logs/install.log" 2>&1 || { tail -n 20 "$S/logs/install.log" >&2; die "the README's install block failed"; }
  k apply -f - >/dev/null <<EOF
apiVersion: pkg.crossplane.io/v1beta1
kind: DeploymentRuntimeConfig
metadata:
  name: provider-http
spec:
  deploymentTemplate:
    spec:
      selector: {}
      template:
        spec:
          containers:
            - name: package-runtime
              args: ["--poll=5s", "--sync=1m", "--timeout=2m"]
EOF
  k patch providers.pkg.crossplane.io provider-http --type merge -p '{"spec": {"runtimeConfigRef": {"name": "provider-http"}}}' >/dev/null
  wait_for "function pod 2/2" bash -c \
    "'$BIN/kubectl' --kubeconfig '$S/admin.kubeconfig' get pods -n $NS -l pkg.crossplane.io/function=function-litellm-keys | grep -q ' 2/2 *Running'"
}

# --- lifecycle ------------------------------------------------------------------------
up() {
  [[ $(id -u) -eq 0 ]] || die "the node needs root (containerd, kubelet, iptables)"
  bash "$here/build.sh" "$BIN" >&2
  bash "$here/images.sh" "$IMAGES" >&2
  bash "$root/tools/image/build.sh" "$IMAGES/function.tar" >&2
  if [[ -d $S ]]; then down >/dev/null 2>&1 || true; rm -rf "$S"; fi
  mkdir -p "$S/logs" "$S/xpkg"
  local name tokens
  for name in etcd etcd-peer apiserver registry registry-loopback litellm kubelet kubelet-healthz \
    kube-proxy-healthz kube-proxy-metrics; do
    new_port "$name"
  done
  trap 'up_failed' EXIT
  pki
  read -r -a tokens <"$S/pki/.tokens"
  kubeconfig "$S/admin.kubeconfig" "${tokens[0]}"
  kubeconfig "$S/kubelet.kubeconfig" "${tokens[1]}"
  kubeconfig "$S/kube-proxy.kubeconfig" "${tokens[2]}"
  network
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_registry
  start_litellm_relay
  start_containerd
  start_kubelet
  start_kube_proxy
  install_dns
  install_crossplane
  push_packages
  install_readme
  trap - EXIT
  local env="export NODE_KUBECONFIG=$S/admin.kubeconfig NODE_STATE_DIR=$S"
  [[ -z ${LITELLM_URL:-} ]] || env+=" NODE_LITELLM_URL=http://$NODE_IP:$(port_of litellm)"
  echo "$env" | tee "$S/env.sh"
  log "node plane ready in ${SECONDS} s: kubectl --kubeconfig $S/admin.kubeconfig get pods -A"
}

up_failed() {
  log "up failed; logs are in $S/logs"
  [[ ${CLUSTER_KEEP_ON_FAILURE:-0} == 1 ]] || down
}

down() {
  local name
  for name in kubelet kube-proxy; do stop "$name"; done
  # The pods outlive kubelet: their shims belong to this containerd.
  local shim
  for shim in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $S/containerd.sock" || true); do
    pkill -KILL -P "$shim" 2>/dev/null || true
    kill -KILL "$shim" 2>/dev/null || true
  done
  for name in containerd litellm-relay registry-relay registry scheduler controller-manager apiserver etcd; do
    stop "$name"
  done
  [[ ! -x $BIN/kube-proxy ]] || "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # Pod volumes, rootfs and network namespaces stay mounted under $S until unmounted.
  awk -v s="$S/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link delete fnlk-cni0 2>/dev/null || true
}

status() {
  local name
  for name in etcd apiserver controller-manager scheduler registry registry-relay litellm-relay \
    containerd kubelet kube-proxy; do
    if running "$name"; then echo "$name running"; else echo "$name stopped"; fi
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) sed -n '2,26p' "$0" >&2; exit 2 ;;
esac
