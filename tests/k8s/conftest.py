"""Fixtures of the Kubernetes tier: a real kube-apiserver + etcd, Kubeflow CRDs, fakes, RBAC tokens.

The whole tier SKIPS (never fails) when the binaries from ``scripts/k8s-test-env.sh`` or the
handbook's Kubeflow CRDs are absent. See docs/k8s-testing.md.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

# The loopback nfs-ganesha (skips without ganesha or root), for the kubeflow platform's tests;
# the Azure Files + Key Vault fakes, for the Azure storage test.
from tests.fakes.fixtures import azure_env, nfs_server  # noqa: F401
from tests.k8s.cluster import (
    SA_ISSUER,
    LocalCluster,
    binary,
    crd_dir,
    missing_binaries,
    missing_crds,
)
from tests.k8s.fake_operator import FakeTrainingOperator
from tests.k8s.kubeapi import request
from tests.k8s.process_kubelet import ProcessKubelet

_names = itertools.count()


def unique_name(prefix: str) -> str:
    """A DNS-1035 name unique within this test run (and, via the clock, across runs)."""
    return f"{prefix}-{time.time_ns() % 10**8:08d}-{next(_names)}"


@dataclass
class Cluster:
    """What tests get from ``k8s_cluster``."""

    local: LocalCluster
    api: client.ApiClient  # admin (system:masters), its own Configuration

    @property
    def kubeconfig(self) -> Path:
        return self.local.kubeconfig

    @property
    def server(self) -> str:
        return self.local.server


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[Cluster]:
    """etcd + kube-apiserver on free loopback ports, Kubeflow CRDs installed; one per session."""
    reason = missing_binaries() or missing_crds()
    if reason:
        pytest.skip(reason)
    run_dir = Path(tempfile.mkdtemp(prefix="kube-"))
    local = LocalCluster(run_dir)
    local.start()
    try:
        api = local.api_client()
        local.install_crds(api, crd_dir())
        yield Cluster(local, api)
    finally:
        local.stop()
        if os.environ.get("KUBESWEEP_K8S_KEEP_RUN_DIR") != "1":  # keep logs for debugging
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def k8s_api(k8s_cluster: Cluster) -> client.ApiClient:
    return k8s_cluster.api


@pytest.fixture
def k8s_namespace(k8s_cluster: Cluster) -> str:
    """A fresh namespace per test. Never deleted: without a namespace controller it would stay
    Terminating forever; unique names keep tests independent."""
    name = unique_name("t")
    request(k8s_cluster.api, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


@pytest.fixture
def fake_operator(k8s_cluster: Cluster, k8s_namespace: str) -> Iterator[FakeTrainingOperator]:
    """The fake training operator, reconciling TFJobs/PyTorchJobs of ``k8s_namespace``."""
    operator = FakeTrainingOperator(k8s_cluster.api, k8s_namespace).start()
    yield operator
    operator.stop()
    assert not operator.errors, f"fake operator errors: {operator.errors}"


KubeletFactory = Callable[..., ProcessKubelet]


@pytest.fixture
def kubelet_factory(
    k8s_cluster: Cluster, k8s_namespace: str, tmp_path: Path
) -> Iterator[KubeletFactory]:
    """Start a process kubelet for ``k8s_namespace``; keyword arguments as ``ProcessKubelet``
    (``volumes={"nfs-server:/export": dir, "share": dir}``, ``extra_env=...``)."""
    started: list[ProcessKubelet] = []

    def start(**kwargs: Any) -> ProcessKubelet:
        kubelet = ProcessKubelet(
            k8s_cluster.api, k8s_namespace, tmp_path / f"kubelet{len(started)}", **kwargs
        )
        started.append(kubelet.start())
        return kubelet

    yield start
    for kubelet in started:
        kubelet.stop()
    errors = [e for k in started for e in k.errors]
    assert not errors, f"process kubelet errors: {errors}"


@pytest.fixture
def process_kubelet(kubelet_factory: KubeletFactory) -> ProcessKubelet:
    """A process kubelet with no volume mappings (emptyDir/secret/configMap still work)."""
    return kubelet_factory()


Helm = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def helm(k8s_cluster: Cluster, tmp_path: Path) -> Helm:
    """``helm(*args)`` -> CompletedProcess: the cached helm 3 against the test cluster, with its
    cache/config/data homes in a temp dir (never the user's). Skips when helm is not built."""
    path = binary("helm", "HELM_BIN")
    if not os.access(path, os.X_OK):
        pytest.skip(f"helm not installed ({path}); build it with scripts/k8s-test-env.sh")
    env = {
        **os.environ,
        "KUBECONFIG": str(k8s_cluster.kubeconfig),
        **{
            f"HELM_{kind}_HOME": str(tmp_path / f"helm-{kind.lower()}")
            for kind in ("CACHE", "CONFIG", "DATA")
        },
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(path), *args], env=env, capture_output=True, text=True, check=check, timeout=120
        )

    return run


@dataclass
class Identity:
    """A ServiceAccount with a TokenRequest token: a real non-admin identity."""

    namespace: str
    service_account: str
    token: str
    kubeconfig: Path
    api: client.ApiClient


RoleTokenFactory = Callable[..., Identity]


@pytest.fixture
def role_token(
    k8s_cluster: Cluster, k8s_namespace: str, tmp_path: Path
) -> Iterator[RoleTokenFactory]:
    """``role_token(rules)`` -> an ``Identity`` bound to a new Role with ``rules`` (or to the
    existing Role ``role=...``) in ``namespace`` (default: the test's). Its ``api`` client and
    ``kubeconfig`` carry only the ServiceAccount's token, so RBAC answers are real 403s."""
    clients: list[client.ApiClient] = []

    def mint(
        rules: list[Mapping[str, Any]] | None = None,
        *,
        role: str | None = None,
        namespace: str | None = None,
        expiration_seconds: int = 3600,
    ) -> Identity:
        ns = namespace or k8s_namespace
        name = unique_name("sa")
        role_name = role or name
        base = f"/api/v1/namespaces/{ns}"
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        request(k8s_cluster.api, "POST", f"{base}/serviceaccounts", {"metadata": {"name": name}})
        if role is None:
            request(
                k8s_cluster.api,
                "POST",
                f"{rbac}/roles",
                {"metadata": {"name": role_name}, "rules": [dict(r) for r in rules or []]},
            )
        request(
            k8s_cluster.api,
            "POST",
            f"{rbac}/rolebindings",
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": role_name,
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        )
        token_request = request(
            k8s_cluster.api,
            "POST",
            f"{base}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": [SA_ISSUER], "expirationSeconds": expiration_seconds},
            },
        )
        token = token_request["status"]["token"]
        kubeconfig = tmp_path / f"{name}.kubeconfig"
        kubeconfig.write_text(
            k8s_cluster.local.kubeconfig_text(f"system:serviceaccount:{ns}:{name}", token, ns)
        )
        # A separate kubeconfig (not api_key overrides on a copy of the admin configuration):
        # load_kube_config's refresh hook would silently re-inject the admin token.
        api = k8s_cluster.local.api_client(kubeconfig)
        clients.append(api)
        return Identity(ns, name, token, kubeconfig, api)

    yield mint
    for api in clients:
        api.close()
