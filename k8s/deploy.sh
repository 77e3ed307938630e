#!/usr/bin/env bash
# Applies an overlay in order, without relying on Argo CD or Flux hooks:
#   1. platform: namespace, network policies, generated Secrets (dev), the engines; wait until ready
#   2. migrations: a fresh `migrate` Job (a Job's pod template is immutable, so the previous
#      release's Job is deleted first); wait until it completes, stop if it fails
#   3. services: every Deployment, Service, HPA, PDB, Ingress; wait for the rollouts
# usage: k8s/deploy.sh dev|prod      (needs kubectl >= 1.27 and the operators in k8s/README.md)
set -euo pipefail
overlay="$(cd "$(dirname "$0")" && pwd)/overlays/${1:?usage: $0 dev|prod}"
ns=glimpse

kubectl apply -k "$overlay" -l glimpse.io/phase=platform
kubectl -n "$ns" wait --for=condition=Ready cluster.postgresql.cnpg.io/glimpse-pg --timeout=15m
for engine in nats redis object-store; do
  kubectl -n "$ns" rollout status "statefulset/$engine" --timeout=10m
done
kubectl -n "$ns" wait --for=condition=complete job/redis-cluster-create --timeout=10m

kubectl -n "$ns" delete job migrate --ignore-not-found --wait
kubectl apply -k "$overlay" -l glimpse.io/phase=migrations
for _ in $(seq 1 180); do
  status=$(kubectl -n "$ns" get job migrate -o jsonpath='{.status.succeeded}/{.status.failed}')
  case "$status" in
    1/*) break ;;
    */[1-9]*) if [ "$(kubectl -n "$ns" get job migrate -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')" = True ]; then
        kubectl -n "$ns" logs job/migrate --tail=50 >&2 || true
        echo "deploy: migrations failed; the services were not rolled out" >&2
        exit 1
      fi ;;
  esac
  sleep 5
done
[ "$(kubectl -n "$ns" get job migrate -o jsonpath='{.status.succeeded}')" = 1 ] || { echo "deploy: migrations timed out" >&2; exit 1; }

kubectl apply -k "$overlay" -l glimpse.io/phase=services
for deployment in $(kubectl -n "$ns" get deployments -l app.kubernetes.io/part-of=glimpse -o name); do
  kubectl -n "$ns" rollout status "$deployment" --timeout=10m
done
