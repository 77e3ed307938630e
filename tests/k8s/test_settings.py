"""The manifests give every process the settings it needs, with values it accepts, on ports that agree,
pointing at Services that exist."""

from __future__ import annotations

import base64
import re

import pytest

from tests.k8s.manifests import (
    OVERLAYS,
    ROOT,
    Env,
    Obj,
    containers,
    env_name,
    environment,
    glimpse_workloads,
    host_port,
    named,
    of_kind,
    render,
    settings_class,
)

# Settings whose defaults are right only on a developer's machine (127.0.0.1 addresses, the dev
# JWT secret, one stream replica, a bucket derived from the namespace, an empty operator token that
# turns moderation off): each process that reads
# one must get a value from its ConfigMap or Secret. Matched by name, so a new `*_addr` or `*_url`
# in any settings class is covered without touching this list.
_NO_SAFE_DEFAULT = re.compile(
    r"^(namespace|stream_replicas|jwt_secret|operator_token|listen|worker_listen|http_host|trusted_proxies"
    r"|s3_endpoint|s3_access_key|s3_secret_key|media_bucket|media_public_base_url|.*_addr|.*_url)$"
)

# What a process never reads although its settings class has it (MeshSettings gives every class every
# shared field); test_exemptions_match_the_code checks each claim against the process's code.
_ADDRS = {"graph_addr", "post_addr", "media_addr", "feed_addr", "fanout_addr"}
_NOT_READ: dict[str, set[str]] = {
    # media_addr: SetAvatar attaches the picture through media_svc.
    "graph_svc": {"redis_url", *_ADDRS - {"media_addr"}},
    # graph_addr: the visibility rule behind every read with a caller.
    "post_svc": {"redis_url", "jwt_secret", *_ADDRS - {"media_addr", "graph_addr"}},
    # post_addr: the worker's sweeper asks post_svc which posts exist (the check reads the package).
    "media_svc": {"redis_url", "jwt_secret", "worker_listen", *_ADDRS - {"post_addr"}},
    # The worker runs media_svc's settings but binds worker_listen, not listen.
    "media_svc.worker": {"redis_url", "jwt_secret", "listen", *_ADDRS - {"post_addr"}},
    "feed_svc": {"database_url", "jwt_secret", "feed_addr", "fanout_addr"},
    "fanout_svc": {"database_url", "jwt_secret", "media_addr", "feed_addr", "fanout_addr"},
    # redis_url: it drops what each commit changed from the engagement cache (engagement_cache).
    "engagement_svc": {"jwt_secret", "media_addr", "feed_addr", "fanout_addr"},
    "notification_svc": {"redis_url", "jwt_secret", "media_addr", "feed_addr", "fanout_addr"},
    "story_svc": {"redis_url", "jwt_secret", "post_addr", "feed_addr", "fanout_addr"},
    # It reads every user's data from graph, post, media and engagement; its zips are in its own bucket.
    "export_svc": {"redis_url", "jwt_secret", "feed_addr", "fanout_addr"},
    # NATS: the one watch behind the notification streams.
    "gateway": {"database_url", "fanout_addr"},
}
# Reads only database_url (mesh/migrate.py).
_MIGRATE_READS = {"database_url"}

# The keys of glimpse-secrets and glimpse-pg-app-credentials, as k8s/README.md documents them.
SECRET_KEYS = {
    "glimpse-secrets": {
        "GLIMPSE_JWT_SECRET",
        "GLIMPSE_OPERATOR_TOKEN",
        "GLIMPSE_DATABASE_URL",
        "GLIMPSE_MIGRATIONS_DATABASE_URL",
        "GLIMPSE_S3_ACCESS_KEY",
        "GLIMPSE_S3_SECRET_KEY",
    },
    "glimpse-pg-app-credentials": {"username", "password"},
}


def _processes(overlay: str) -> list[tuple[Obj, Obj, str]]:
    """(workload, container, module) for every container that runs `python -m <module>`."""
    found = []
    for workload in glimpse_workloads(render(overlay)):
        for container in containers(workload):
            found.append((workload, container, container["args"][0]))
    return found


def _required(module: str) -> set[str]:
    settings = settings_class(module)
    if module == "mesh.migrate":
        return _MIGRATE_READS
    fields = {f for f in settings.model_fields if _NO_SAFE_DEFAULT.match(f)}
    return fields - _NOT_READ.get(module, set())


def test_every_process_is_covered():
    modules = {module for _, _, module in _processes("prod")}
    # A process is a package with settings and an entry point (timelines has settings but is a library).
    packages = {p.parent.name for p in ROOT.glob("*/settings.py") if (p.parent / "__main__.py").exists()}
    assert modules == {"mesh.migrate", "media_svc.worker", *packages}, "a service without a Deployment?"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_without_a_safe_default_are_set(overlay: str):
    objects = render(overlay)
    for workload, container, module in _processes(overlay):
        settings = settings_class(module)
        env = environment(objects, container)
        missing = sorted(env_name(settings, f) for f in _required(module) if not env.has(env_name(settings, f)))
        assert not missing, f"{overlay} {workload['metadata']['name']} ({module}) lacks {missing}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_processes_accept_the_values(overlay: str, monkeypatch: pytest.MonkeyPatch):
    """Each process's settings class parses its environment (secrets stood in for by placeholders)."""
    objects = render(overlay)
    for workload, container, module in _processes(overlay):
        env = environment(objects, container)
        settings_cls = settings_class(module)
        for name in list(settings_cls.model_fields):
            monkeypatch.delenv(env_name(settings_cls, name), raising=False)
        for name, value in env.values.items():
            monkeypatch.setenv(name, value)
        for name in env.secret_refs:
            monkeypatch.setenv(name, _secret_value(objects, *env.secret_refs[name]))
        settings = settings_cls()
        assert settings.namespace == "glimpse", workload["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_name_documented_keys(overlay: str):
    objects = render(overlay)
    readme = (ROOT / "k8s" / "README.md").read_text()
    for _, container, _ in _processes(overlay):
        for secret, key in environment(objects, container).secret_refs.values():
            assert key in SECRET_KEYS[secret], f"{secret}/{key} is not a documented key"
            rendered = named(objects, "Secret", secret)
            if rendered is not None:  # dev generates its Secrets; prod leaves them to the operator
                assert key in {**rendered.get("data", {}), **rendered.get("stringData", {})}
    for keys in SECRET_KEYS.values():
        for key in keys - {"username", "password"}:
            assert key in readme, f"k8s/README.md does not document {key}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_agree_from_setting_to_service(overlay: str):
    objects = render(overlay)
    for workload, container, module in _processes(overlay):
        if workload["kind"] != "Deployment":
            continue
        env = environment(objects, container)
        listen_port, port_name = _listen_port(module, env)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[port_name] == listen_port, f"{module}: containerPort != the listen setting"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container[probe]
            port = spec["grpc"]["port"] if "grpc" in spec else spec["httpGet"]["port"]
            assert ports.get(port, port) == listen_port, f"{module}: {probe} is not on the listen port"
        metrics = env.values.get("GLIMPSE_WORKER_METRICS_PORT" if module.endswith("worker") else "GLIMPSE_METRICS_PORT")
        if metrics is not None:
            assert ports["metrics"] == int(metrics)
        service = named(objects, "Service", workload["metadata"]["name"])
        assert service is not None, f"no Service for {workload['metadata']['name']}"
        assert service["spec"]["selector"].items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        targets = {p["port"]: ports.get(p["targetPort"], p["targetPort"]) for p in service["spec"]["ports"]}
        assert listen_port in targets.values()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_addresses_point_at_services_that_exist(overlay: str):
    objects = render(overlay)
    listening = _listening_ports(objects)
    for _, container, module in _processes(overlay):
        env = environment(objects, container)
        for name, value in env.values.items():
            if name.endswith("_ADDR"):
                host, port = host_port(value)
                assert port in _service_targets(objects, host, listening), f"{name}={value}: no such Service port"
        for server in env.values.get("GLIMPSE_NATS_URL", "").split(","):
            if server:
                _assert_engine_address(objects, server, 4222)
        if "GLIMPSE_REDIS_URL" in env.values:
            assert env.values["GLIMPSE_REDIS_URL"].startswith("redis+cluster://")
            _assert_engine_address(objects, env.values["GLIMPSE_REDIS_URL"], 6379)
        if "GLIMPSE_S3_ENDPOINT" in env.values:
            _assert_engine_address(objects, env.values["GLIMPSE_S3_ENDPOINT"], 9000)
        for ref in env.secret_refs.values():
            url = _secret_value(objects, *ref) if named(objects, "Secret", ref[0]) else ""
            if url.startswith("postgresql"):
                host, _ = host_port(url)
                assert host in _postgres_services(objects), f"{module}: database host {host} does not exist"


def test_prod_runs_replicated_engines():
    objects = render("prod")
    mesh = named(objects, "ConfigMap", "glimpse-mesh")["data"]
    nats = named(objects, "StatefulSet", "nats")
    assert mesh["GLIMPSE_STREAM_REPLICAS"] == "3" == str(nats["spec"]["replicas"])
    assert len(mesh["GLIMPSE_NATS_URL"].split(",")) == 3
    assert mesh["GLIMPSE_REDIS_URL"].startswith("redis+cluster://")
    assert named(objects, "StatefulSet", "redis")["spec"]["replicas"] == 6
    assert named(objects, "Cluster", "glimpse-pg")["spec"]["instances"] == 3
    assert named(objects, "StatefulSet", "object-store")["spec"]["replicas"] >= 4
    for deployment in of_kind(objects, "Deployment"):
        assert deployment["spec"]["replicas"] >= 3, deployment["metadata"]["name"]


def test_dev_streams_fit_on_its_nats():
    objects = render("dev")
    mesh = named(objects, "ConfigMap", "glimpse-mesh")["data"]
    assert int(mesh["GLIMPSE_STREAM_REPLICAS"]) <= named(objects, "StatefulSet", "nats")["spec"]["replicas"]


def test_exemptions_match_the_code():
    """A process said not to read a store or a secret has no code that opens it."""
    for module, fields in _NOT_READ.items():
        package = ROOT / module.split(".")[0]
        source = "\n".join(p.read_text() for p in package.glob("*.py") if p.name != "settings.py")
        if "database_url" in fields:
            assert "open_runtime(settings)" not in source and "Database(" not in source, module
        if "redis_url" in fields:
            assert "redis" not in source.lower(), module
        if "jwt_secret" in fields:
            assert "signer_from" not in source and "jwt" not in source.lower(), module
        if "nats_url" in fields:
            assert "open_runtime" not in source and "Bus." not in source, module
        for field in fields:
            if field.endswith("_addr"):
                assert f"settings.{field}" not in source, f"{module} reads {field}"


def _listen_port(module: str, env: Env) -> tuple[int, str]:
    if module == "gateway":
        assert env.values["GLIMPSE_HTTP_HOST"] == "0.0.0.0"
        return int(env.values["GLIMPSE_HTTP_PORT"]), "http"
    listen = env.values["GLIMPSE_WORKER_LISTEN" if module.endswith(".worker") else "GLIMPSE_LISTEN"]
    host, port = listen.rsplit(":", 1)
    # 127.0.0.1 would refuse the kubelet's probes and every other pod.
    assert host == "0.0.0.0", f"{module} listens on {listen}"
    return int(port), "grpc"


def _listening_ports(objects: tuple[Obj, ...]) -> dict[str, dict[str, int]]:
    """Pod label 'app.kubernetes.io/name' -> its containers' named ports."""
    found: dict[str, dict[str, int]] = {}
    for workload in [*of_kind(objects, "Deployment"), *of_kind(objects, "StatefulSet")]:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ports = {p.get("name", ""): p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
        found[labels["app.kubernetes.io/name"]] = ports
    return found


def _service_targets(objects: tuple[Obj, ...], name: str, listening: dict[str, dict[str, int]]) -> set[int]:
    """The ports Service `name` offers whose target is a port some selected pod listens on."""
    service = named(objects, "Service", name)
    assert service is not None, f"no Service {name}"
    pods = listening.get(service["spec"]["selector"].get("app.kubernetes.io/name", ""), {})
    return {p["port"] for p in service["spec"]["ports"] if pods.get(p["targetPort"], p["targetPort"]) in pods.values()}


def _assert_engine_address(objects: tuple[Obj, ...], address: str, port: int) -> None:
    """A Service (nats, redis) or a StatefulSet pod behind its headless Service (nats-1.nats-headless)."""
    host, actual = host_port(address)
    assert actual == port, address
    pod, _, service = host.partition(".")
    if service:
        statefulset = next(s for s in of_kind(objects, "StatefulSet") if s["spec"]["serviceName"] == service)
        ordinal = int(pod.rsplit("-", 1)[1])
        assert pod.startswith(statefulset["metadata"]["name"] + "-") and ordinal < statefulset["spec"]["replicas"]
        assert named(objects, "Service", service)["spec"]["clusterIP"] == "None"
    else:
        assert port in {p["port"] for p in named(objects, "Service", host)["spec"]["ports"]}, address


def _postgres_services(objects: tuple[Obj, ...]) -> set[str]:
    """The Services CloudNativePG creates: <cluster>-rw/-ro/-r and one per Pooler (its name)."""
    clusters = [o["metadata"]["name"] for o in of_kind(objects, "Cluster")]
    poolers = [o["metadata"]["name"] for o in of_kind(objects, "Pooler")]
    return {f"{c}-{suffix}" for c in clusters for suffix in ("rw", "ro", "r")} | set(poolers)


def _secret_value(objects: tuple[Obj, ...], secret: str, key: str) -> str:
    rendered = named(objects, "Secret", secret)
    if rendered is None:
        return {"GLIMPSE_JWT_SECRET": "x" * 48, "GLIMPSE_OPERATOR_TOKEN": "x" * 48}.get(key, "placeholder")
    if key in rendered.get("stringData", {}):
        return rendered["stringData"][key]
    return base64.b64decode(rendered["data"][key]).decode()
