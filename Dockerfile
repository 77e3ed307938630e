# syntax=docker/dockerfile:1
# One image for every Glimpse process; the container's command picks which one runs:
#   python -m graph_svc | post_svc | media_svc | media_svc.worker | feed_svc | fanout_svc | engagement_svc
#            | notification_svc | story_svc | export_svc | gateway
#   python -m mesh.migrate graph_svc post_svc media_svc engagement_svc notification_svc story_svc export_svc
#   (the migrations job)
# Build from the repository root: docker build -t glimpse:dev .

# Pinned by version (add @sha256 digests in your registry mirror for bit-for-bit rebuilds).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.txt requirements-dev.txt ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --quiet -r requirements.txt
# The code generators live in a throwaway venv, at the versions `make proto` uses
# (read from requirements-dev.txt so the two never drift apart).
RUN python -m venv /opt/codegen \
 && /opt/codegen/bin/pip install --quiet $(grep -E '^(grpcio-tools|mypy-protobuf)==' requirements-dev.txt)
COPY proto ./proto
# The same command as the Makefile's gen/.stamp rule: the glimpse.* package with type stubs.
RUN mkdir gen \
 && /opt/codegen/bin/python -m grpc_tools.protoc -I proto \
      -I "$(/opt/codegen/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')" \
      --plugin=protoc-gen-mypy=/opt/codegen/bin/protoc-gen-mypy \
      --plugin=protoc-gen-mypy_grpc=/opt/codegen/bin/protoc-gen-mypy_grpc \
      --python_out=gen --grpc_python_out=gen --mypy_out=gen --mypy_grpc_out=gen \
      $(find proto -name '*.proto')

FROM ${PYTHON_IMAGE} AS runtime
# Bytecode is compiled at build time: at run time the root filesystem is read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app:/app/gen \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp
RUN groupadd --system --gid 10001 glimpse \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin glimpse
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /src/gen /app/gen
# .dockerignore lets through only the Python packages (mesh, gateway, *_svc) and requirements.
COPY . /app
RUN python -m compileall -q /app \
 && rm -f /app/requirements.txt /app/requirements-dev.txt
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["python", "-m"]
CMD ["gateway"]
