#!/usr/bin/env bash
# Stops the local clusters started by dev/cluster/start.sh and removes their data (.run/cluster/).
set -euo pipefail
here="$(dirname "$0")"
"$here/nats-cluster.sh" stop
"$here/redis-cluster.sh" stop
