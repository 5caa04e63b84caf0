"""`helm install` (no --wait: the test apiserver runs no controllers) into the real kube-apiserver
of tests/k8s, then RBAC checked with a TokenRequest token of the chart's dispatcher
ServiceAccount: real 403s, not a reading of the manifests."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.helm.conftest import CHART
from tests.k8s.cluster import SA_ISSUER
from tests.k8s.conftest import Cluster, Helm, unique_name
from tests.k8s.kubeapi import request

pytestmark = [pytest.mark.k8s, pytest.mark.helm]

JOBS = {
    "tfjobs": ("TFJob", "tfReplicaSpecs", "Worker", "tensorflow"),
    "pytorchjobs": ("PyTorchJob", "pytorchReplicaSpecs", "Master", "pytorch"),
}


def job_body(plural: str, name: str) -> dict[str, Any]:
    kind, specs, role, container = JOBS[plural]
    pod = {"spec": {"containers": [{"name": container, "image": "busybox", "command": ["true"]}]}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubesweep"}},
        "spec": {specs: {role: {"replicas": 1, "restartPolicy": "Never", "template": pod}}},
    }


SELECTOR = {"labelSelector": "kubesweep.io/experiment=x"}


def status_of(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
) -> int:
    try:
        request(api, method, path, body, query=query)
    except client.ApiException as exc:
        return int(exc.status)
    return 200


def dispatcher_client(cluster: Cluster, namespace: str, sa: str, tmp: Path) -> client.ApiClient:
    """A client holding only a TokenRequest token of the chart's ServiceAccount."""
    token = request(
        cluster.api,
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [SA_ISSUER], "expirationSeconds": 3600},
        },
    )["status"]["token"]
    kubeconfig = tmp / f"{sa}.kubeconfig"
    kubeconfig.write_text(
        cluster.local.kubeconfig_text(f"system:serviceaccount:{namespace}:{sa}", token, namespace)
    )
    return cluster.local.api_client(kubeconfig)


@pytest.fixture
def install(helm: Helm, k8s_namespace: str) -> Iterator[Any]:
    """``install(*helm_args)`` -> release name; every release is uninstalled afterwards."""
    releases: list[str] = []

    def run(*args: str) -> str:
        release = unique_name("ks")
        done = helm("install", release, str(CHART), "-n", k8s_namespace, *args, check=False)
        assert done.returncode == 0, done.stderr
        releases.append(release)
        return release

    yield run
    for release in releases:
        helm("uninstall", release, "-n", k8s_namespace, check=False)


def manifest(helm: Helm, release: str, namespace: str) -> list[dict[str, Any]]:
    out = helm("get", "manifest", release, "-n", namespace).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("mode", ["role", "clusterrole"])
def test_dispatcher_service_account_gets_exactly_its_rights(
    k8s_cluster: Cluster, k8s_namespace: str, install: Any, tmp_path: Path, mode: str
) -> None:
    ns = k8s_namespace
    args = ["--set", f"rbac.namespaces={{{ns}}}"]
    if mode == "clusterrole":
        args += ["--set", "rbac.clusterRole.enabled=true"]
    release = install(*args)
    sa = f"{release}-kubesweep-dispatcher"
    api = dispatcher_client(k8s_cluster, ns, sa, tmp_path)
    try:
        # What the kubeflow platform does: create, read, list and delete jobs ...
        for plural in JOBS:
            base = f"/apis/kubeflow.org/v1/namespaces/{ns}/{plural}"
            name = unique_name("probe")
            assert status_of(api, "POST", base, job_body(plural, name)) == 200, plural
            assert status_of(api, "GET", f"{base}/{name}") == 200
            assert status_of(api, "GET", base) == 200
            assert status_of(api, "DELETE", f"{base}/{name}") == 200
            assert status_of(api, "DELETE", base, query=SELECTOR) == 200
        # ... create and delete the Secrets it makes for trials ...
        secrets = f"/api/v1/namespaces/{ns}/secrets"
        body = {"metadata": {"name": "ks-probe-token"}, "stringData": {"token": "t"}}
        assert status_of(api, "POST", secrets, body) == 200
        assert status_of(api, "DELETE", f"{secrets}/ks-probe-token") == 200
        assert status_of(api, "DELETE", secrets, query=SELECTOR) == 200
        # ... and inspect pods and their logs (404: no such pod, but not forbidden).
        assert status_of(api, "GET", f"/api/v1/namespaces/{ns}/pods") == 200
        assert status_of(api, "GET", f"/api/v1/namespaces/{ns}/pods/nope/log") == 404
        # Its preflight (SelfSubjectAccessReview) sees the same answer.
        review = request(
            api,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": ns,
                        "verb": "create",
                        "group": "kubeflow.org",
                        "resource": "tfjobs",
                    }
                }
            },
        )
        assert review["status"]["allowed"] is True

        # Refused: reading any Secret (its own namespace's included: it never needs to) ...
        request(k8s_cluster.api, "POST", secrets, {"metadata": {"name": "someone-elses"}})
        assert status_of(api, "GET", f"{secrets}/someone-elses") == 403
        assert status_of(api, "GET", secrets) == 403
        # ... anything in a namespace it does not manage ...
        other = unique_name("other")
        request(k8s_cluster.api, "POST", "/api/v1/namespaces", {"metadata": {"name": other}})
        request(
            k8s_cluster.api,
            "POST",
            f"/api/v1/namespaces/{other}/secrets",
            {"metadata": {"name": "private"}, "stringData": {"k": "v"}},
        )
        assert status_of(api, "GET", f"/api/v1/namespaces/{other}/secrets/private") == 403
        assert status_of(api, "GET", f"/api/v1/namespaces/{other}/secrets") == 403
        other_jobs = f"/apis/kubeflow.org/v1/namespaces/{other}/tfjobs"
        assert status_of(api, "POST", other_jobs, job_body("tfjobs", "x")) == 403
        # ... and cluster-scoped objects such as nodes.
        assert status_of(api, "GET", "/api/v1/nodes") == 403
        node = {"metadata": {"name": unique_name("node")}}
        assert status_of(api, "POST", "/api/v1/nodes", node) == 403
    finally:
        api.close()


def test_generated_secrets_survive_an_upgrade(
    k8s_cluster: Cluster, k8s_namespace: str, install: Any, helm: Helm
) -> None:
    release = install("--set", f"rbac.namespaces={{{k8s_namespace}}}")

    def secret(name: str) -> dict[str, str]:
        path = f"/api/v1/namespaces/{k8s_namespace}/secrets/{name}"
        return dict(request(k8s_cluster.api, "GET", path)["data"])

    before = secret(f"{release}-kubesweep")
    flower_before = secret(f"{release}-kubesweep-flower")
    assert len(base64.b64decode(before["api-token"])) == 40
    done = helm(
        "upgrade", release, str(CHART), "-n", k8s_namespace, "--reuse-values",
        "--set", "api.replicaCount=2", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert secret(f"{release}-kubesweep") == before
    assert secret(f"{release}-kubesweep-flower") == flower_before


def test_old_servers_get_no_hpa_and_a_v1beta1_pdb(
    k8s_namespace: str, install: Any, helm: Helm
) -> None:
    """The test apiserver is 1.20: no autoscaling/v2, no policy/v1 - the chart adapts."""
    release = install(
        "-f", str(CHART / "ci" / "hpa-values.yaml"),
        "--set", f"rbac.namespaces={{{k8s_namespace}}}",
    )  # fmt: skip
    objects = manifest(helm, release, k8s_namespace)
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert pdbs
    assert {o["apiVersion"] for o in pdbs} == {"policy/v1beta1"}
    # With the HPA skipped, the Deployments keep their replica counts.
    assert all("replicas" in o["spec"] for o in objects if o["kind"] == "Deployment")
