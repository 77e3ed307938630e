# Glimpse developer loop. `make run` and `make test` work on a fresh machine: they build the venv,
# generate the protobuf package, start the backing services that are down, and migrate.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find proto -name '*.proto')
SERVICES := graph_svc post_svc media_svc engagement_svc notification_svc story_svc export_svc
DATASET ?= $(CURDIR)/../shared/datasets/socfb-Reed98.edges

.PHONY: help run test test-faults test-cluster lint proto services browser migrate demo bench clean
help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The repo root and the generated package are importable from anywhere in the venv.
	printf '%s\n%s\n' "$(CURDIR)" "$(CURDIR)/gen" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/glimpse-dev.pth
	touch $@

gen/.stamp: $(VENV)/.installed $(PROTOS)
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -I proto -I $$($(PY) -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))') \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc \
		--python_out=gen --grpc_python_out=gen --mypy_out=gen --mypy_grpc_out=gen $(PROTOS)
	touch $@

proto: gen/.stamp  ## generate the glimpse.* protobuf package (gen/) with type stubs

services: $(VENV)/.installed  ## start PostgreSQL, Redis, NATS and the local S3 endpoint if they are down
	dev/ensure-services.sh

browser:  ## install Debian's Chromium for the browser tests (tests/web) if it is missing
	dev/ensure-browser.sh

migrate: proto services  ## create the database and migrate every service's schema
	$(PY) -m mesh.migrate $(SERVICES)

demo: migrate  ## load the demo social graph (idempotent)
	$(PY) -m graph_svc.demo $(DATASET)

run: demo  ## run every service and the gateway with demo data (Ctrl-C stops all)
	@echo "gateway  http://127.0.0.1:8080  (docs: /docs)   demo login: reed0 / glimpse-demo-password"
	@echo "gRPC     graph :50051  post :50052  media :50053  feed :50054  fanout :50055  media worker :50056  engagement :50057  notification :50058  story :50059  export :50060"
	@echo "try      curl -s http://127.0.0.1:8080/v1/users/reed0   |   $(VENV)/bin/grpcurl -plaintext 127.0.0.1:50054 list"
	@echo "         the README's walkthrough goes from registering to reading the feed"
	$(VENV)/bin/honcho start -f Procfile

# The clustered engines of `make test-cluster`, started on loopback by dev/cluster/start.sh.
CLUSTER_ENV := GLIMPSE_REDIS_URL=redis+cluster://127.0.0.1:7001 \
	GLIMPSE_NATS_URL=nats://127.0.0.1:4231,nats://127.0.0.1:4232,nats://127.0.0.1:4233 \
	GLIMPSE_STREAM_REPLICAS=3

test: proto services browser  ## the whole suite (tests/faults included) on the local servers, then the cluster suite (what CI runs)
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-cluster

test-faults: proto services  ## only the fault tests (kill -9 a service or restart NATS under load), figures shown
	$(PY) -m pytest -q tests/faults

test-cluster: proto services  ## event, fan-out and feed tests on a local Redis Cluster and NATS cluster
	dev/cluster/start.sh
	$(CLUSTER_ENV) $(PY) -m pytest -q tests/mesh tests/timelines tests/engagement_cache tests/graph_svc tests/fanout_svc tests/feed_svc tests/cluster; \
		status=$$?; dev/cluster/stop.sh; exit $$status

lint: proto services  ## ruff, mypy, import-linter, deptry, alembic check, buf lint and buf breaking against main
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/deptry .
	GLIMPSE_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/glimpse_lint $(PY) -m mesh.migrate --check $(SERVICES)
	$(VENV)/bin/buf lint
	if git rev-parse --verify -q main >/dev/null; then $(VENV)/bin/buf breaking --against '.git#branch=main'; fi

bench: proto services migrate  ## run the benchmarks (figures next to their floors); one: make bench BENCH=graph_stream
	$(PY) -m bench $(BENCH)

clean:  ## remove the venv, generated code and run files
	rm -rf $(VENV) gen .run
