"""A kubeflow experiment on the real kube-apiserver tier while the API server, through a
fault-injecting proxy, answers 500 and 429 at random (some 500s after the change was made)
and drops watches: the experiment reaches DONE with exactly maxTrialNumber trials, one job
per trial (no duplicate), one final metric each, and no job or Secret is left."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store
from kubesweep_dispatcher.platforms.kubeflow.platform import parse_handle
from tests.fakes.ganesha import GaneshaServer
from tests.integration.helpers import event_counts, wait_for
from tests.k8s.cluster import wait_until
from tests.k8s.conftest import Cluster
from tests.k8s.fake_operator import FakeTrainingOperator
from tests.k8s.process_kubelet import ProcessKubelet
from tests.k8s.test_kubeflow_platform import EXAMPLES, JobRecorder, leftovers, write_experiment

from .faultproxy import FaultProxy
from .harness import Figures

pytestmark = pytest.mark.integration

TRIALS = 6


@pytest.fixture
def proxy(k8s_cluster: Cluster, tmp_path: Path, chaos_seed: int) -> Iterator[FaultProxy]:
    relay = FaultProxy(
        k8s_cluster.server,
        k8s_cluster.local.ca_file,
        tmp_path / "proxy",
        random.Random(f"{chaos_seed}:kubeflow"),
    ).start()
    yield relay
    relay.close()


def test_kubeflow_experiment_survives_api_server_faults(
    k8s_cluster: Cluster,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    nfs_kubelet: ProcessKubelet,
    nfs_server: GaneshaServer,
    proxy: FaultProxy,
    tmp_path: Path,
    figures: Figures,
    chaos_seed: int,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    text = k8s_cluster.kubeconfig.read_text()
    assert k8s_cluster.server in text
    text = text.replace(k8s_cluster.server, proxy.url)
    text = text.replace(str(k8s_cluster.local.ca_file), str(proxy.ca_file))
    kubeconfig.write_text(text)
    env = {
        "KUBESWEEP_KUBECONFIG": str(kubeconfig),
        "KUBESWEEP_NFS_PORT": str(nfs_server.port),
        "KUBESWEEP_NFS_VERSION": "4.1",
        "KUBESWEEP_STORAGE_RETRY_BACKOFF_S": "0.05",
        "KUBESWEEP_WATCH_INTERVAL_S": "0.3",
    }
    config = write_experiment(
        tmp_path / "exp",
        EXAMPLES / "config_kubeflow.yml",
        namespace=k8s_namespace,
        nfs=nfs_server,
        trials=TRIALS,
        concurrency=3,
        sleep=1.0,
    )
    with EmbeddedStack(tmp_path / "stack", extra_env=env) as stack:
        api = ApiClient(stack.api_url, stack.api_token)
        store = Store.from_url(stack.redis_url)
        with JobRecorder(k8s_api, k8s_namespace, "tfjobs") as jobs:
            exp_id = api.submit(config)
            exp = wait_for(api, exp_id, {"DONE", "ERROR", "STOPPED"}, timeout=240)
            context = f"seed {chaos_seed}, experiment {exp_id}, injected {dict(proxy.injected)}"
            assert exp["status"] == "DONE", (context, exp)
            wait_until(lambda: not leftovers(k8s_api, k8s_namespace, exp_id), 60, "the cleanup")
        trials = store.list_trials(exp_id)
        counts = event_counts(store, exp_id)
        figures.experiments += 1
        figures.faults += proxy.faults
        for kind, count in proxy.injected.items():
            figures.by_target[f"kube-apiserver {kind}"] += count
        succeeded = [t for t in trials if t.status.value == "SUCCEEDED"]
        figures.trials_lost += TRIALS - len(succeeded)
        handles = [parse_handle(t.job) for t in trials]
        duplicates = len(jobs.created) - len({h[2] for h in handles if h})
        figures.duplicate_launches += max(0, duplicates)
        finals = [counts[("metric.final", t.id)] for t in trials]
        figures.duplicate_metrics += sum(max(0, n - 1) for n in finals)
        assert len(trials) == TRIALS, context
        assert [(t.id, t.status.value, t.message) for t in trials if t not in succeeded] == []
        assert finals == [1] * TRIALS, context
        assert sorted(jobs.created) == sorted(h[2] for h in handles if h), context
        assert proxy.faults >= 5, context
