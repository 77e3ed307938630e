"""The Dockerfile builds the image the way the Makefile builds the dev tree, and docker-compose.yml
runs each process of it with the settings it needs, at addresses that exist."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.k8s.manifests import ROOT, containers, env_name, glimpse_workloads, host_port, render, settings_class
from tests.k8s.test_settings import _required

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ENGINES = {"postgres": 5432, "redis": 6379, "nats": 4222, "object-store": 9000}
# What a process listens on, by module.
LISTEN = {"gateway": "GLIMPSE_HTTP_PORT", "media_svc.worker": "GLIMPSE_WORKER_LISTEN"}


def _glimpse_services() -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if s.get("image", "").startswith("glimpse")}


def _protoc_flags(text: str) -> set[str]:
    return set(re.findall(r"--(?:python|grpc_python|mypy|mypy_grpc)_out=gen", text)) | set(
        re.findall(r"--plugin=protoc-gen-(mypy|mypy_grpc)=", text)
    )


def test_codegen_matches_make_proto():
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile.split("gen/.stamp:", 1)[1].split("\n\n", 1)[0]
    assert _protoc_flags(rule) and _protoc_flags(rule) == _protoc_flags(DOCKERFILE)
    assert "grpc_tools.protoc -I proto" in rule and "grpc_tools.protoc -I proto" in DOCKERFILE
    # The generator versions come from the same file the Makefile installs.
    assert "requirements-dev.txt" in DOCKERFILE and "grpcio-tools|mypy-protobuf" in DOCKERFILE


def test_runtime_stage_is_pinned_non_root_and_importable():
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base[1])
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "USER 10001:10001" in runtime and "--uid 10001" in runtime
    assert "PYTHONPATH=/app:/app/gen" in runtime
    assert 'ENTRYPOINT ["python", "-m"]' in runtime


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[next(i for i, line in enumerate(ignore) if not line.startswith("#"))] == "*"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert not allowed & {".venv", ".git", ".run", "tests", "gen"}


def test_every_process_runs_in_compose_and_in_kubernetes():
    compose_modules = {s["command"][0] for s in _glimpse_services().values()}
    kubernetes_modules = {c["args"][0] for o in glimpse_workloads(render("prod")) for c in containers(o)}
    assert compose_modules == kubernetes_modules
    # The Dockerfile's header lists the processes the image runs.
    header = DOCKERFILE.split("FROM", 1)[0]
    assert all(module.split(".")[-1] in header for module in compose_modules)


@pytest.mark.parametrize("service", sorted(_glimpse_services()))
def test_compose_service_has_its_settings_and_reachable_addresses(service: str):
    spec = _glimpse_services()[service]
    module = spec["command"][0]
    env = {k: str(v) for k, v in spec["environment"].items()}
    settings = settings_class(module)
    missing = [env_name(settings, f) for f in _required(module) if env_name(settings, f) not in env]
    assert not missing, f"{service} lacks {missing}"
    if module != "mesh.migrate":
        key = LISTEN.get(module, "GLIMPSE_LISTEN")
        assert env.get("GLIMPSE_HTTP_HOST", "0.0.0.0") == "0.0.0.0"
        assert env[key].startswith("0.0.0.0:") or key == "GLIMPSE_HTTP_PORT"
    listening = {
        name: int(s["environment"].get(LISTEN.get(s["command"][0], "GLIMPSE_LISTEN"), ":0").rsplit(":", 1)[-1])
        for name, s in _glimpse_services().items()
        if s["command"][0] != "mesh.migrate"
    }
    for name, value in env.items():
        if name.endswith("_ADDR"):
            host, port = host_port(value)
            assert listening.get(host) == port, f"{service}: {name}={value} matches no service's listen port"
        if name in ("GLIMPSE_DATABASE_URL", "GLIMPSE_REDIS_URL", "GLIMPSE_NATS_URL", "GLIMPSE_S3_ENDPOINT"):
            host, port = host_port(value)
            assert ENGINES.get(host) == port and host in COMPOSE["services"], f"{service}: {name}={value}"


def test_services_start_after_the_migrations():
    for name, spec in _glimpse_services().items():
        if spec["command"][0] == "mesh.migrate":
            assert spec["restart"] == "no"
            continue
        assert spec["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
