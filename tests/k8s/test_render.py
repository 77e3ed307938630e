"""Both overlays render, every object is valid for Kubernetes, and every image is pinned."""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest

from tests.k8s.manifests import OVERLAYS, Obj, containers, render

# The oldest Kubernetes the manifests target (native gRPC probes, autoscaling/v2, policy/v1 and the
# restricted Pod Security profile are all there) and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())

# kubernetes-validate knows only built-in kinds. CloudNativePG's CRDs are checked against the part
# of their schema that we use: required fields, types and enums, and no unknown fields in `spec`,
# so a misspelt field (which the API server would prune without a word) fails here.
_RESOURCES = {
    "type": "object",
    "properties": {
        "requests": {"type": "object", "additionalProperties": {"type": "string"}},
        "limits": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["requests", "limits"],
}
_STORAGE = {"type": "object", "properties": {"size": {"type": "string", "pattern": r"^\d+[MGT]i$"}}}
CNPG_SCHEMAS = {
    "Cluster": {
        "type": "object",
        "required": ["instances", "imageName", "storage", "bootstrap"],
        "additionalProperties": False,
        "properties": {
            "instances": {"type": "integer", "minimum": 1},
            "imageName": {"type": "string", "pattern": r"^ghcr\.io/cloudnative-pg/postgresql:\d+\.\d+"},
            "minSyncReplicas": {"type": "integer", "minimum": 0},
            "maxSyncReplicas": {"type": "integer", "minimum": 0},
            "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
            "bootstrap": {
                "type": "object",
                "required": ["initdb"],
                "properties": {
                    "initdb": {
                        "type": "object",
                        "required": ["database", "owner", "secret"],
                        "properties": {
                            "database": {"type": "string"},
                            "owner": {"type": "string"},
                            "secret": {"type": "object", "required": ["name"]},
                        },
                    }
                },
            },
            "postgresql": {
                "type": "object",
                "properties": {"parameters": {"type": "object", "additionalProperties": {"type": "string"}}},
            },
            "storage": _STORAGE,
            "walStorage": _STORAGE,
            "resources": _RESOURCES,
            "affinity": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enablePodAntiAffinity": {"type": "boolean"},
                    "podAntiAffinityType": {"enum": ["preferred", "required"]},
                    "topologyKey": {"type": "string"},
                },
            },
            "inheritedMetadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
        },
    },
    "Pooler": {
        "type": "object",
        "required": ["cluster", "type", "pgbouncer"],
        "additionalProperties": False,
        "properties": {
            "cluster": {"type": "object", "required": ["name"]},
            "instances": {"type": "integer", "minimum": 1},
            "type": {"enum": ["rw", "ro", "r"]},
            "pgbouncer": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "poolMode": {"enum": ["session", "transaction"]},
                    "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "template": {"type": "object", "required": ["spec"]},
        },
    },
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str):
    kinds = {o["kind"] for o in render(overlay)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_objects_are_valid_kubernetes(overlay: str, version: str):
    checked = 0
    for obj in render(overlay):
        if obj["apiVersion"].startswith("postgresql.cnpg.io/"):
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cloudnativepg_objects_match_the_fields_we_use(overlay: str):
    custom = [o for o in render(overlay) if o["apiVersion"].startswith("postgresql.cnpg.io/")]
    assert {o["kind"] for o in custom} == set(CNPG_SCHEMAS)
    for obj in custom:
        assert obj["apiVersion"] == "postgresql.cnpg.io/v1"
        jsonschema.validate(obj["spec"], CNPG_SCHEMAS[obj["kind"]])
    clusters = {o["metadata"]["name"] for o in custom if o["kind"] == "Cluster"}
    assert all(o["spec"]["cluster"]["name"] in clusters for o in custom if o["kind"] == "Pooler")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned_to_a_version(overlay: str):
    for obj in render(overlay):
        images = [c["image"] for c in _all_containers(obj)]
        if obj["kind"] == "Cluster":
            images.append(obj["spec"]["imageName"])
        for image in images:
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{obj['metadata']['name']}: {image} has no tag"
            assert tag not in ("latest", "stable", "main"), f"{obj['metadata']['name']}: {image} is not pinned"


def _all_containers(obj: Obj) -> list[Obj]:
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        return containers(obj)
    if obj["kind"] == "Pooler":
        return obj["spec"]["template"]["spec"]["containers"]
    return []
