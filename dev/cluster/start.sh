#!/usr/bin/env bash
# Starts the local clusters for `make test-cluster`, on loopback only:
#   Redis Cluster, 3 masters + 3 replicas: redis+cluster://127.0.0.1:7001 (7001-7006)
#   NATS JetStream, 3 servers:             nats://127.0.0.1:4231,nats://127.0.0.1:4232,nats://127.0.0.1:4233
# Idempotent: running clusters are left as they are. dev/cluster/stop.sh stops both.
set -euo pipefail
here="$(dirname "$0")"
"$here/redis-cluster.sh" start
"$here/nats-cluster.sh" start
