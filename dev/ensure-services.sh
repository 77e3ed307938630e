#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis, NATS JetStream and the local S3 endpoint (moto) are listening,
# starting whichever is not. Safe to run any number of times. Used by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
S3_PORT="${GLIMPSE_S3_PORT:-9000}"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Keep the kernel from handing our fixed ports out as the source port of an outgoing connection
# (they sit inside the ephemeral range): under load that makes a service fail to bind at start.
# Best effort: it needs root and a writable /proc/sys.
# Every port a process of `make run` listens on (tests/test_dev_ports.py keeps it in step with the
# settings' defaults: 50060 was missing once, and export_svc failed to bind under load). Added to
# what is reserved already (the kernel merges the ranges).
RESERVED_PORTS="8080,$S3_PORT,50051-50060"
reserved=/proc/sys/net/ipv4/ip_local_reserved_ports
if [ -w "$reserved" ] && ! grep -q -- "${RESERVED_PORTS##*,}" "$reserved"; then
  echo "$(cat "$reserved"),$RESERVED_PORTS" | sed 's/^,//' > "$reserved" 2>/dev/null || true
fi

wait_for() {  # name port
  for _ in $(seq 1 100); do listening "$2" && return 0; sleep 0.1; done
  echo "ensure-services: $1 did not start listening on 127.0.0.1:$2; see its log" >&2
  exit 1
}

if ! listening 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for PostgreSQL 5432
fi

if ! listening 6379; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis 6379
fi

if ! listening 4222; then
  echo "starting NATS (JetStream)"
  NATS_BIN=/usr/sbin/nats-server
  [ -x "$NATS_BIN" ] || NATS_BIN="$(pwd)/.venv/bin/nats-server"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$NATS_BIN" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for NATS 4222
fi

if ! listening "$S3_PORT"; then
  echo "starting the local S3 endpoint (moto) on 127.0.0.1:$S3_PORT"
  nohup .venv/bin/moto_server -H 127.0.0.1 -p "$S3_PORT" > .run/moto.log 2>&1 &
  echo $! > .run/moto.pid
  wait_for "moto S3" "$S3_PORT"
fi
