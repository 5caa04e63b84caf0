"""Fixtures of the deployment tier: the Helm chart, docker-compose.yml and the Dockerfile.

Offline checks (lint, template, kubernetes-validate, settings parity, compose schema) need only
the helm binary from scripts/k8s-test-env.sh and SKIP without it; the install and RBAC checks
also need the local kube-apiserver (tests/k8s fixtures, re-exported below).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import binary

# The Kubernetes tier's fixtures (k8s_cluster, k8s_namespace, helm, ...), shared rather than copied.
from tests.k8s.conftest import (  # noqa: F401
    helm,
    k8s_api,
    k8s_cluster,
    k8s_namespace,
    role_token,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "kubesweep"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# Every values variant the tests render: the defaults plus each ci/ file.
VARIANTS = {"default": None, **{path.stem: path for path in CI_VALUES}}


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    path = binary("helm", "HELM_BIN")
    if not os.access(path, os.X_OK):
        pytest.skip(f"helm not installed ({path}); build it with scripts/k8s-test-env.sh")
    return path


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm_offline(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """``helm_offline(*args)`` -> stdout of helm without a cluster, homes in a temp dir."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "KUBECONFIG": str(home / "no-kubeconfig"),
        **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(helm_bin), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}{done.stdout}"
        return done.stdout

    return run


@pytest.fixture(scope="session")
def render(helm_offline: Callable[..., str]) -> Render:
    """``render(variant, *extra_args)`` -> the chart's objects from ``helm template``."""
    cache: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def run(variant: str = "default", *extra: str) -> list[dict[str, Any]]:
        key = (variant, *extra)
        if key not in cache:
            values = VARIANTS[variant]
            args = ["template", "sweep", str(CHART), "--namespace", "kubesweep", *extra]
            if values is not None:
                args += ["-f", str(values)]
            cache[key] = [d for d in yaml.safe_load_all(helm_offline(*args)) if d]
        return cache[key]

    return run


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a Deployment/StatefulSet/Pod (empty for other kinds)."""
    spec = obj.get("spec") or {}
    pod = spec.get("template", {}).get("spec") if obj["kind"] != "Pod" else spec
    return list((pod or {}).get("containers") or [])


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))
