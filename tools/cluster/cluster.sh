#!/usr/bin/env bash
# A real control plane on this machine, without containers, for the end-to-end suite:
# etcd, kube-apiserver, kube-controller-manager (garbage collector, namespaces,
# service-account tokens), Crossplane core v2.2.0 (External package runtime),
# provider-http v1.0.14, a local OCI registry holding the function package, and
# the function itself, served over mTLS as Crossplane's package runtime would.
#
#   tools/cluster/cluster.sh up          build (cached), start, install; prints export lines
#   tools/cluster/cluster.sh down        stop everything up started (pid-safe)
#   tools/cluster/cluster.sh stop NAME   stop one component: etcd apiserver controller-manager
#   tools/cluster/cluster.sh kill NAME       crossplane provider-http registry function
#   tools/cluster/cluster.sh start NAME      (kill: SIGKILL, no chance to finish anything)
#   tools/cluster/cluster.sh status      which components run
#
# On stdout `up` prints only `export KUBECONFIG=... CLUSTER_STATE_DIR=...`; progress
# and errors go to stderr, logs to $CLUSTER_STATE_DIR/logs. Every port is a free one.
# It needs ./dev's .venv (for the function) and the LiteLLM proxy only for the tests.
#
# Environment: CLUSTER_STATE_DIR (default ${TMPDIR:-/tmp}/fnlk-cluster),
# CLUSTER_TIMEOUT (seconds per wait, default 180), CLUSTER_BIN (default .tools/bin).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
S=${CLUSTER_STATE_DIR:-${TMPDIR:-/tmp}/fnlk-cluster}
BIN=${CLUSTER_BIN:-$root/.tools/bin}
TIMEOUT=${CLUSTER_TIMEOUT:-180}
NS=crossplane-system
FUNCTION_PACKAGE_TAG=v0.1.0

log() { echo "[cluster] $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=tools/cluster/lib.sh
source "$here/lib.sh"

k() { "$BIN/kubectl" --kubeconfig "$S/admin.kubeconfig" "$@"; }

# --- components ---------------------------------------------------------------------
start_apiserver() {
  spawn apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$(port_of etcd)" \
    --cert-dir "$S/pki" --secure-port "$(port_of apiserver)" --bind-address 127.0.0.1 \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$S/pki/sa.pub" --service-account-signing-key-file "$S/pki/sa.key" \
    --token-auth-file "$S/pki/tokens.csv" --authorization-mode RBAC \
    --service-cluster-ip-range 10.96.0.0/16 --enable-priority-and-fairness=false
  wait_for apiserver k get --raw /readyz
}

start_controller_manager() {
  spawn controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$S/admin.kubeconfig" --leader-elect=false --secure-port 0 \
    --controllers garbagecollector,namespace,serviceaccount,serviceaccount-token,resourcequota \
    --service-account-private-key-file "$S/pki/sa.key" --root-ca-file "$S/pki/apiserver.crt"
}

crossplane_env() {
  local crds
  crds=$(cd "$root/tools/crossplane" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/crossplane/crossplane/v2)/cluster/crds
  echo KUBECONFIG="$S/admin.kubeconfig" POD_NAMESPACE=$NS ENABLE_WEBHOOKS=false \
    TLS_CA_SECRET_NAME=crossplane-root-ca TLS_CLIENT_SECRET_NAME=crossplane-tls-client \
    CRDS_PATH="$crds"
}

start_crossplane() {
  # provider-http polls every 5 s here, 12 times its default of 1 m, and writes every
  # Request's status at each poll; Crossplane's XR circuit breaker (1 token/s by default)
  # is scaled the same way, or a Team with members would be throttled to one reconcile
  # every 30 s (README, Known limits).
  # shellcheck disable=SC2046 # the words are NAME=VALUE pairs without spaces.
  spawn crossplane env $(crossplane_env) PACKAGE_RUNTIME=External \
    TLS_CLIENT_CERTS_DIR="$S/crossplane-tls" XPKG_CACHE_DIR="$S/xpkg-cache" \
    METRICS_PORT="$(port_of crossplane-metrics)" HEALTH_PROBE_PORT="$(port_of crossplane-health)" \
    "$BIN/crossplane-core" core start --circuit-breaker-refill-rate=12
  wait_for crossplane curl -sf "http://127.0.0.1:$(port_of crossplane-health)/healthz"
}

start_provider_http() {
  # Metrics stay on provider-http's fixed :8080 (no flag moves them); Crossplane's
  # own are on free ports, so the two never collide.
  spawn provider-http env KUBECONFIG="$S/admin.kubeconfig" \
    "$BIN/provider-http" --poll 5s --sync 1m --timeout 2m
}

start_registry() {
  spawn registry "$BIN/registry" -port "$(port_of registry)"
  wait_for registry curl -sf "http://127.0.0.1:$(port_of registry)/v2/"
}

start_function() {
  spawn function "$root/.venv/bin/function-litellm-keys" serve \
    --tls-certs-dir "$S/function-tls" --address "127.0.0.1:$(port_of function)"
  wait_for function python3 -c "import socket; socket.create_connection(('127.0.0.1', $(port_of function)), 1)"
}

# --- one-time set-up ------------------------------------------------------------------
pki() {
  mkdir -p "$S/pki"
  openssl genrsa -out "$S/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$S/pki/sa.key" -pubout -out "$S/pki/sa.pub" 2>/dev/null
  local token
  token=$(openssl rand -hex 24)
  echo "$token,admin,admin,system:masters" >"$S/pki/tokens.csv"
  cat >"$S/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: https://127.0.0.1:$(port_of apiserver)
      insecure-skip-tls-verify: true
users:
  - name: admin
    user:
      token: $token
contexts:
  - name: local
    context: {cluster: local, user: admin}
current-context: local
EOF
  chmod 600 "$S/admin.kubeconfig" "$S/pki/tokens.csv" "$S/pki/sa.key"
}

init_crossplane() {
  k create namespace $NS >/dev/null 2>&1 || true
  local attempt
  for attempt in 1 2 3; do
    # shellcheck disable=SC2046
    if env $(crossplane_env) "$BIN/crossplane-core" core init >>"$S/logs/crossplane-init.log" 2>&1; then
      break
    fi
    ((attempt < 3)) || { tail -n 30 "$S/logs/crossplane-init.log" >&2; die "crossplane core init failed"; }
    log "crossplane core init: retrying (the Lock CRD may not be established yet)"
    sleep 3
  done
  mkdir -p "$S/crossplane-tls"
  local key
  for key in tls.crt tls.key ca.crt; do
    k get secret -n $NS crossplane-tls-client -o "jsonpath={.data.${key//./\\.}}" | base64 -d \
      >"$S/crossplane-tls/$key"
  done
}

install_provider_http() {
  local dir
  dir=$(cd "$here/provider-http" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/crossplane-contrib/provider-http)
  k apply --server-side -f "$dir/package/crds" >/dev/null
  k wait --for condition=Established --timeout "${TIMEOUT}s" -f "$dir/package/crds" >/dev/null
}

# The function's serving certificate, signed by Crossplane's root CA, as the
# package runtime would make it.
function_tls() {
  local dir="$S/function-tls"
  mkdir -p "$dir"
  k get secret -n $NS crossplane-root-ca -o 'jsonpath={.data.tls\.crt}' | base64 -d >"$dir/ca.crt"
  k get secret -n $NS crossplane-root-ca -o 'jsonpath={.data.tls\.key}' | base64 -d >"$dir/ca.key"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/tls.key" -subj "/CN=function-litellm-keys" \
    -out "$dir/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext.cnf" -out "$dir/tls.crt" 2>/dev/null
  rm -f "$dir/ca.key" "$dir/tls.csr" "$dir/ext.cnf"
  k create secret tls -n $NS function-litellm-keys-tls-server --cert "$dir/tls.crt" \
    --key "$dir/tls.key" --dry-run=client -o yaml | k apply -f - >/dev/null
}

install_function() {
  local pkg="127.0.0.1:$(port_of registry)/litellm/function-litellm-keys:$FUNCTION_PACKAGE_TAG"
  CROSSPLANE_CLI="$BIN/crossplane" bash "$root/tools/crossplane/build-packages.sh" "$S/xpkg" 2>>"$S/logs/xpkg.log"
  "$BIN/crossplane" xpkg push -f "$S/xpkg/function.xpkg" "$pkg" >>"$S/logs/xpkg.log" 2>&1 \
    || { tail -n 20 "$S/logs/xpkg.log" >&2; die "xpkg push failed"; }
  function_tls
  k apply -f - >/dev/null <<EOF
apiVersion: pkg.crossplane.io/v1
kind: Function
metadata:
  name: function-litellm-keys
spec:
  package: $pkg
EOF
  local revision=""
  wait_for "crossplane FunctionRevision" bash -c \
    "'$BIN/kubectl' --kubeconfig '$S/admin.kubeconfig' get functionrevisions -l pkg.crossplane.io/package=function-litellm-keys -o name | grep -q ."
  revision=$(k get functionrevisions -l pkg.crossplane.io/package=function-litellm-keys -o name | head -n1)
  # With the External runtime, whoever runs the function says where it is and
  # that it is healthy, as the Deployment runtime would.
  k patch "$revision" --subresource status --type merge -p "{\"status\": {
    \"tlsServerSecretName\": \"function-litellm-keys-tls-server\",
    \"endpoint\": \"dns:///localhost:$(port_of function)\"}}" >/dev/null
  start_function
  k patch "$revision" --subresource status --type json -p "[{\"op\": \"add\",
    \"path\": \"/status/conditions/-\", \"value\": {\"type\": \"RuntimeHealthy\",
    \"status\": \"True\", \"reason\": \"HealthyPackageRevision\",
    \"lastTransitionTime\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}]" >/dev/null
  wait_for "crossplane Function" bash -c \
    "'$BIN/kubectl' --kubeconfig '$S/admin.kubeconfig' get function function-litellm-keys -o jsonpath='{.status.conditions[?(@.type==\"Healthy\")].status}' | grep -q True"
}

up() {
  bash "$here/build.sh" "$BIN" >&2
  [[ -x $root/.venv/bin/function-litellm-keys ]] || die "run ./dev lint (or ./dev test) once first: the function runs from .venv"
  if [[ -d $S ]]; then down >/dev/null 2>&1 || true; rm -rf "$S"; fi
  mkdir -p "$S/logs" "$S/xpkg-cache"
  local name
  for name in etcd etcd-peer apiserver crossplane-metrics crossplane-health registry function; do
    new_port "$name"
  done
  # A failed start stops what it started; CLUSTER_KEEP_ON_FAILURE=1 keeps it for a look.
  trap 'up_failed' EXIT
  pki
  start_etcd
  start_apiserver
  start_controller_manager
  init_crossplane
  install_provider_http
  start_crossplane
  start_provider_http
  start_registry
  install_function
  trap - EXIT
  echo "export KUBECONFIG=$S/admin.kubeconfig CLUSTER_STATE_DIR=$S" | tee "$S/env.sh"
  log "control plane ready in ${SECONDS} s: kubectl --kubeconfig $S/admin.kubeconfig get functions"
}

up_failed() {
  log "up failed; logs are in $S/logs"
  [[ ${CLUSTER_KEEP_ON_FAILURE:-0} == 1 ]] || down
}

down() {
  local name
  for name in function provider-http crossplane registry controller-manager apiserver etcd; do
    stop "$name"
  done
}

status() {
  local name
  for name in etcd apiserver controller-manager crossplane provider-http registry function; do
    if running "$name"; then echo "$name running"; else echo "$name stopped"; fi
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  stop) stop "${2:?name}" ;;
  kill) stop "${2:?name}" KILL ;;
  start)
    case ${2:?name} in
      etcd) start_etcd ;; apiserver) start_apiserver ;;
      controller-manager) start_controller_manager ;; crossplane) start_crossplane ;;
      provider-http) start_provider_http ;; registry) start_registry ;; function) start_function ;;
      *) die "unknown component $2" ;;
    esac ;;
  status) status ;;
  *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
