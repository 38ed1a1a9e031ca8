# Shared by cluster.sh and node.sh: free ports, and processes started in their
# own session whose pid files hold "pid start-time", so a recycled pid is never
# killed. The caller sets S (state directory) and TIMEOUT (seconds per wait)
# and defines log; ports live in $S/ports, one file per name.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

running() {
  local file="$S/run/$1.pid" pid started
  [[ -f $file ]] || return 1
  read -r pid started <"$file"
  [[ -n $pid && $(start_time "$pid") == "$started" ]]
}

# spawn NAME CMD...: run CMD in its own session, log to logs/NAME.log, record the pid.
spawn() {
  local name=$1; shift
  running "$name" && { log "$name already runs"; return; }
  mkdir -p "$S/run" "$S/logs"
  setsid "$@" >>"$S/logs/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(start_time "$pid")" >"$S/run/$name.pid"
  log "$name started (pid $pid, log $S/logs/$name.log)"
}

stop() {
  local name=$1 signal=${2:-TERM} file="$S/run/$1.pid" pid started
  [[ -f $file ]] || return 0
  read -r pid started <"$file"
  if [[ -n $pid && $(start_time "$pid") == "$started" ]]; then
    kill "-$signal" -- "-$pid" 2>/dev/null || kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      [[ $(start_time "$pid") == "$started" ]] || break
      sleep 0.1
    done
    if [[ $(start_time "$pid") == "$started" ]]; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$name stopped"
  fi
  rm -f "$file"
}

# wait_for WHAT CMD...: retry CMD until it succeeds, or fail with the log's tail.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      log "timed out waiting for $what"
      tail -n 30 "$S/logs/${what%% *}.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

port_of() { cat "$S/ports/$1"; }
new_port() { mkdir -p "$S/ports"; free_port >"$S/ports/$1"; }

# etcd on loopback, on the ports named etcd and etcd-peer, its data in $S/etcd.
start_etcd() {
  local client peer
  client=$(port_of etcd) peer=$(port_of etcd-peer)
  spawn etcd etcd --name fnlk --data-dir "$S/etcd" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "fnlk=http://127.0.0.1:$peer"
  wait_for etcd curl -sf "http://127.0.0.1:$client/health"
}
