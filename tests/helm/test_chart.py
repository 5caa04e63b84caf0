"""The Helm chart offline: lint, render every values variant, validate against Kubernetes'
schemas, and check the security promises (non-root, read-only root fs, least-privilege RBAC)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helm.conftest import CHART, VARIANTS, Render, component, containers

pytestmark = pytest.mark.helm

# kubernetes-validate ships schemas for 1.25 ... 1.37: the oldest supported line, a middle one
# and the newest. (1.20, the local test apiserver, is covered by the install test instead.)
K8S_VERSIONS = ["1.25.0", "1.30.0", kubernetes_validate.latest_version()]
COMPONENTS = {"api", "worker", "watch", "tuner", "collector", "flower"}


def values_args(variant: str) -> list[str]:
    path = VARIANTS[variant]
    return [] if path is None else ["-f", str(path)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_strict(helm_offline: Any, variant: str) -> None:
    out = helm_offline("lint", "--strict", str(CHART), *values_args(variant))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_objects_validate_strictly(render: Render, variant: str, version: str) -> None:
    objects = render(variant, "--kube-version", version)
    assert objects
    for obj in objects:
        # strict: unknown fields are errors, as `kubectl apply --validate=strict` would say.
        kubernetes_validate.validate(obj, version, strict=True)


def test_schema_rejects_a_misspelt_value(helm_offline: Any) -> None:
    with pytest.raises(AssertionError, match="replicas is not allowed"):
        helm_offline("template", "x", str(CHART), "--set", "api.replicas=3")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_component_is_its_own_deployment(render: Render, variant: str) -> None:
    deployments = {component(o): o for o in render(variant) if o["kind"] == "Deployment"}
    expected = COMPONENTS - ({"flower"} if variant == "flower-off-values" else set())
    assert set(deployments) == expected


def test_hpa_per_component_and_replicas_left_to_it(render: Render) -> None:
    objects = render("hpa-values")
    hpas = {component(o): o for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == COMPONENTS
    assert hpas["worker"]["spec"]["maxReplicas"] == 10
    for obj in objects:
        if obj["kind"] == "Deployment":
            assert "replicas" not in obj["spec"], component(obj)
    # Without the HPA, replicas are set from values.
    default = {component(o): o for o in render() if o["kind"] == "Deployment"}
    assert default["collector"]["spec"]["replicas"] == 2
    assert not [o for o in render() if o["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_are_locked_down(render: Render, variant: str) -> None:
    for obj in render(variant):
        if not containers(obj):
            continue
        pod = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        for container in containers(obj):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"], container["name"]
        # Only the dispatcher (api, worker, watch) mounts a Kubernetes token.
        dispatcher = component(obj) in {"api", "worker", "watch"}
        assert pod["automountServiceAccountToken"] is dispatcher, obj["metadata"]["name"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_long_running_containers_have_probes(render: Render, variant: str) -> None:
    for obj in render(variant):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in containers(obj):
                assert "readinessProbe" in container, obj["metadata"]["name"]
                assert "livenessProbe" in container, obj["metadata"]["name"]


def test_heartbeat_probe_matches_the_heartbeat_keys(render: Render) -> None:
    """The exec probes look for kubesweep.heartbeat's key of their own service."""
    from kubesweep import keys

    services = {"tuner": "tuner", "worker": "dispatcher-worker", "watch": "dispatcher-watch"}
    probed = set()
    for obj in render():
        if obj["kind"] == "Deployment" and component(obj) in services:
            command = containers(obj)[0]["readinessProbe"]["exec"]["command"]
            service = command[-1]
            assert service == services[component(obj)]
            # The probe matches "ks:heartbeat:<service>:<hostname>:*", i.e. any pid of this pod.
            assert "'ks:heartbeat:%s:%s:*' % (sys.argv[1], socket.gethostname())" in command[2]
            assert keys.heartbeat(service, "host:1") == f"ks:heartbeat:{service}:host:1"
            probed.add(service)
    assert probed == set(services.values())


def rules_of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for o in objects if o["kind"] == kind for r in o["rules"]]


def test_dispatcher_rbac_is_exactly_what_the_kubeflow_platform_calls(render: Render) -> None:
    rules = rules_of(render(), "Role")
    grants = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    jobs = {
        ("kubeflow.org", plural, verb)
        for plural in ("tfjobs", "pytorchjobs")
        for verb in ("create", "get", "list", "watch", "delete", "deletecollection")
    }
    secrets = {("", "secrets", verb) for verb in ("create", "delete", "deletecollection")}
    pods = {("", "pods", "get"), ("", "pods", "list"), ("", "pods/log", "get")}
    assert grants == jobs | secrets | pods
    assert not any("*" in json.dumps(rule) for rule in rules)


def test_cluster_role_mode_binds_per_namespace(render: Render) -> None:
    objects = render("clusterrole-values")
    assert not [o for o in objects if o["kind"] == "Role"]
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    assert {b["roleRef"]["kind"] for b in bindings} == {"ClusterRole"}
    # The discovery ClusterRole grants only SelfSubjectAccessReviews and discovery URLs.
    discovery = [o for o in objects if o["metadata"]["name"].endswith("-discovery")]
    assert discovery[0]["rules"][0]["resources"] == ["selfsubjectaccessreviews"]
    policies = [o for o in objects if o["metadata"]["name"].endswith("-trials")]
    assert {p["metadata"]["namespace"] for p in policies} == {"team-a", "team-b"}


def test_trial_network_policy_allows_only_collector_dns_and_peers(render: Render) -> None:
    policy = next(
        o for o in render() if o["kind"] == "NetworkPolicy" and "trials" in o["metadata"]["name"]
    )
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "kubesweep"}}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    egress = spec["egress"]
    collector = egress[0]
    assert collector["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "collector"
    )
    assert collector["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert {p["port"] for p in egress[1]["ports"]} == {53}
    assert egress[2]["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "kubesweep"}}}
    ]
    assert len(egress) == 3  # nothing else: no Redis, no API server, no internet


def test_chart_objects_never_carry_the_trial_label(render: Render) -> None:
    """The NetworkPolicy keys on managed-by=kubesweep; the chart's own pods must not match."""
    for variant in VARIANTS:
        for obj in render(variant):
            assert "managed-by: kubesweep" not in yaml.safe_dump(obj.get("metadata", {}))


def test_generated_secrets_and_external_redis(render: Render) -> None:
    secret = next(o for o in render() if o["metadata"]["name"] == "sweep-kubesweep")
    assert set(secret["data"]) == {"api-token", "signing-key"}
    external = render("external-redis-values")
    assert not [o for o in external if o["kind"] == "StatefulSet"]
    api = next(o for o in external if component(o) == "api" and o["kind"] == "Deployment")
    env = {e["name"]: e for e in containers(api)[0]["env"]}
    assert env["KUBESWEEP_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "redis-url"


def test_redis_keeps_an_append_only_file_on_a_pvc(render: Render) -> None:
    redis = next(o for o in render() if o["kind"] == "StatefulSet")
    command = containers(redis)[0]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_helm_test_hook_posts_an_experiment(render: Render) -> None:
    pod = next(o for o in render() if o["kind"] == "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = containers(pod)[0]["command"]
    assert command[:2] == ["python", "-c"]
    compile(command[2], "helm-test.py", "exec")  # the embedded script is valid Python
    assert "client.submit" in command[2]
