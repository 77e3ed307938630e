#!/usr/bin/env bash
# A 3-node NATS JetStream cluster on loopback, for `make test-cluster`: client ports 4231-4233,
# cluster routes 6231-6233, monitoring 8231-8233, one store dir each under .run/cluster/nats-<n>.
#
#   nats-cluster.sh start          start the three servers and wait for a JetStream meta leader
#   nats-cluster.sh stop           stop every server and remove its store
#   nats-cluster.sh kill-node N    SIGKILL server N (1-3) (failure tests)
#   nats-cluster.sh start-node N   start server N again on its old store (it catches up from the others)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=.run/cluster
NODES=(1 2 3)
# Debian's nats-server where it is installed (as on this project's machines), else the venv's.
NATS_BIN="${NATS_SERVER:-/usr/sbin/nats-server}"
[ -x "$NATS_BIN" ] || NATS_BIN="$(pwd)/.venv/bin/nats-server"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  local n=$1 dir="$RUN/nats-$1"
  mkdir -p "$dir/store"
  cat >"$dir/nats.conf" <<CONF
server_name: glimpse-nats-$n
listen: 127.0.0.1:423$n
http: 127.0.0.1:823$n
pid_file: "$(pwd)/$dir/nats.pid"
log_file: "$(pwd)/$dir/nats.log"
jetstream {
  store_dir: "$(pwd)/$dir/store"
  max_memory_store: 256MB
  max_file_store: 2GB
}
cluster {
  name: glimpse-dev
  listen: 127.0.0.1:623$n
  routes: [nats-route://127.0.0.1:6231, nats-route://127.0.0.1:6232, nats-route://127.0.0.1:6233]
}
CONF
}

start_node() {
  local n=$1 dir="$RUN/nats-$1"
  listening "423$n" && return 0
  [ -f "$dir/nats.conf" ] || write_config "$n"
  nohup "$NATS_BIN" -c "$dir/nats.conf" >>"$dir/nats.stdout" 2>&1 &
  for _ in $(seq 1 100); do listening "423$n" && return 0; sleep 0.05; done
  echo "nats-cluster: server $n did not start; see $dir/nats.log" >&2
  exit 1
}

# JetStream is usable once every server is up and the cluster has elected a meta leader.
wait_meta_leader() {
  for _ in $(seq 1 300); do
    local ready=1
    for n in "${NODES[@]}"; do
      curl -fs "http://127.0.0.1:823$n/jsz" | grep -q '"leader": *"glimpse-nats-' || ready=0
    done
    [ "$ready" = 1 ] && return 0
    sleep 0.1
  done
  echo "nats-cluster: no JetStream meta leader; see $RUN/nats-*/nats.log" >&2
  exit 1
}

case "${1:-}" in
  start)
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_meta_leader
    echo "nats cluster up: nats://127.0.0.1:4231,nats://127.0.0.1:4232,nats://127.0.0.1:4233 ($("$NATS_BIN" --version))"
    ;;
  stop)
    for n in "${NODES[@]}"; do
      pidfile="$RUN/nats-$n/nats.pid"
      if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    for n in "${NODES[@]}"; do
      for _ in $(seq 1 100); do listening "423$n" || break; sleep 0.05; done
      rm -rf "$RUN/nats-$n"
    done
    ;;
  kill-node)
    kill -9 "$(cat "$RUN/nats-$2/nats.pid")"
    ;;
  start-node)
    start_node "$2"
    ;;
  *)
    echo "usage: $0 start|stop|kill-node N|start-node N" >&2
    exit 2
    ;;
esac
