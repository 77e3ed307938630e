"""Every container is bounded, probed and locked down; every Deployment autoscales and survives
voluntary disruptions; the network is closed by default."""

from __future__ import annotations

import pytest

from tests.k8s.manifests import OVERLAYS, WORKLOAD_KINDS, Obj, containers, of_kind, pod_spec, render

APP_TIER = {"glimpse.io/tier": "app"}


def _workloads(overlay: str) -> list[Obj]:
    return [o for o in render(overlay) if o["kind"] in WORKLOAD_KINDS]


def _is_app(workload: Obj) -> bool:
    return APP_TIER.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str):
    for workload in _workloads(overlay):
        for container in containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources.get(bound, {}).keys(), (
                    f"{workload['metadata']['name']}/{container['name']} lacks {bound}"
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay: str):
    for workload in _workloads(overlay):
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_glimpse_processes_run_as_10001_with_a_writable_tmp_only(overlay: str):
    for workload in _workloads(overlay):
        if not _is_app(workload):
            continue
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsUser"] == 10001
        tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in containers(workload):
            assert container["securityContext"]["runAsUser"] == 10001
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts == {"/tmp": mounts.get("/tmp")} and mounts["/tmp"] in tmp


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_long_running_container_is_probed(overlay: str):
    for workload in _workloads(overlay):
        if workload["kind"] == "Job":
            continue
        for container in containers(workload):
            assert "readinessProbe" in container and "livenessProbe" in container, workload["metadata"]["name"]
            if _is_app(workload) and container["args"] != ["gateway"]:
                # Native gRPC health checks, not a TCP connect that a wedged server still accepts.
                assert "grpc" in container["readinessProbe"] and "grpc" in container["livenessProbe"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_an_hpa_and_a_pdb(overlay: str):
    objects = render(overlay)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        hpa = hpas[name]
        assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
    for statefulset in of_kind(objects, "StatefulSet"):
        labels = statefulset["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_closed_by_default_and_only_the_gateway_is_public(overlay: str):
    objects = render(overlay)
    policies = of_kind(objects, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"] for p in policies)
    egress_selected = set()
    public = set()
    for policy in policies:
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if "Egress" in policy["spec"]["policyTypes"]:
            egress_selected.add(selector.get("app.kubernetes.io/name") or selector.get("glimpse.io/tier"))
        for rule in policy["spec"].get("ingress", []):
            for source in rule.get("from", []):
                namespace = source.get("namespaceSelector", {}).get("matchLabels", {})
                if namespace.get("kubernetes.io/metadata.name") == "ingress-nginx":
                    public.add(selector.get("app.kubernetes.io/name") or selector.get("glimpse.io/engine"))
    assert public == {"gateway", "object-store"}
    for workload in _workloads(overlay):
        if _is_app(workload):
            assert workload["metadata"]["name"] in egress_selected, f"{workload['metadata']['name']}: no egress rules"
    backends = {
        rule["backend"]["service"]["name"]
        for ingress in of_kind(objects, "Ingress")
        for host in ingress["spec"]["rules"]
        for rule in host["http"]["paths"]
    }
    assert backends == {"gateway", "object-store"}
