#!/usr/bin/env bash
# A Redis Cluster of 3 masters + 3 replicas on loopback (ports 7001-7006, cluster bus 17001-17006),
# from the installed redis-server, for `make test-cluster`. Data lives under .run/cluster/redis-<port>.
#
#   redis-cluster.sh start            start the six nodes and create the cluster (no-op if it is up)
#   redis-cluster.sh stop             stop every node and remove its data
#   redis-cluster.sh kill-node PORT   SIGKILL one node (failure tests)
#   redis-cluster.sh start-node PORT  start one node again with its nodes.conf (it rejoins the cluster)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=.run/cluster
PORTS=(7001 7002 7003 7004 7005 7006)
# Short enough that a failover in the tests takes seconds, long enough not to flap on a busy CI box.
NODE_TIMEOUT_MS="${REDIS_CLUSTER_NODE_TIMEOUT_MS:-3000}"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() {
  local port=$1 dir="$RUN/redis-$1"
  listening "$port" && return 0
  mkdir -p "$dir"
  # appendonly: a restarted node keeps what it had, like a pod with a volume would.
  redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$NODE_TIMEOUT_MS" \
    --appendonly yes --appendfsync everysec --save "" \
    --dir "$(pwd)/$dir" --logfile "$(pwd)/$dir/redis.log" --pidfile "$(pwd)/$dir/redis.pid" --daemonize yes
  for _ in $(seq 1 100); do listening "$port" && return 0; sleep 0.05; done
  echo "redis-cluster: node $port did not start; see $dir/redis.log" >&2
  exit 1
}

cluster_ok() {
  redis-cli -p "${1:-7001}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

# Serving and replicated: a master with its replica attached, or a replica whose link is up.
node_ready() {
  cluster_ok "$1" && redis-cli -p "$1" info replication | grep -Eq '^(connected_slaves:[1-9]|master_link_status:up)'
}

wait_cluster_ready() {
  for _ in $(seq 1 300); do
    local all=1
    for port in "${PORTS[@]}"; do node_ready "$port" || all=0; done
    [ "$all" = 1 ] && return 0
    sleep 0.1
  done
  echo "redis-cluster: not every node is serving with its replica attached; see $RUN/redis-*/redis.log" >&2
  exit 1
}

case "${1:-}" in
  start)
    for port in "${PORTS[@]}"; do start_node "$port"; done
    if ! cluster_ok 7001; then
      addresses=()
      for port in "${PORTS[@]}"; do addresses+=("127.0.0.1:$port"); done
      # Warns that replicas share a host with their masters: true on loopback, harmless here.
      redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$RUN/redis-create.log"
    fi
    wait_cluster_ready
    echo "redis cluster up: 127.0.0.1:${PORTS[0]}-${PORTS[-1]} (3 masters, 3 replicas)"
    ;;
  stop)
    for port in "${PORTS[@]}"; do
      pidfile="$RUN/redis-$port/redis.pid"
      if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    for port in "${PORTS[@]}"; do
      for _ in $(seq 1 100); do listening "$port" || break; sleep 0.05; done
      rm -rf "$RUN/redis-$port"
    done
    rm -f "$RUN/redis-create.log"
    ;;
  kill-node)
    kill -9 "$(cat "$RUN/redis-$2/redis.pid")"
    ;;
  start-node)
    start_node "$2"
    ;;
  *)
    echo "usage: $0 start|stop|kill-node PORT|start-node PORT" >&2
    exit 2
    ;;
esac
