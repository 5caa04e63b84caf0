"""An Azure Files experiment on the Kubernetes tier: the storage Secret and the azureFile volume.

The dispatcher runs in this process (its API, the launch task, the watcher, the cleanup task)
because Key Vault is the local fake, reached with a fake credential that only an in-process
``DispatcherContext`` can carry; the collector runs in-process too. Everything else is real:
the Azure SDKs against the Files and Key Vault fakes, the kube-apiserver, the fake operator and
the process kubelet, which maps the pods' ``azureFile`` volume to the fake share's folder.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from werkzeug.serving import make_server

from kubesweep.cli.client import ApiClient
from kubesweep.store import Store
from kubesweep_collector.app import create_app as create_collector
from kubesweep_collector.settings import CollectorSettings
from kubesweep_dispatcher import launcher, watch
from kubesweep_dispatcher.api.app import create_app
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms.kubeflow import names
from kubesweep_dispatcher.platforms.kubeflow.platform import parse_handle
from kubesweep_dispatcher.settings import DispatcherSettings
from tests.fakes.azure_files import DEV_KEY
from tests.fakes.fixtures import SECRET, SHARE, VAULT, AzureEnv
from tests.k8s.cluster import wait_until
from tests.k8s.conftest import Cluster, KubeletFactory
from tests.k8s.fake_operator import FakeTrainingOperator

pytestmark = pytest.mark.k8s
SIGNING_KEY = "s" * 32
GROUP, VERSION = "kubeflow.org", "v1"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kubeflow"

TRIAL = """\
import nni
params = nni.get_next_parameter()
print(f"azure trial x={params['x']}")
nni.report_final_result(params["x"])
"""


def _serve(app: Any) -> Any:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def dispatcher(
    k8s_cluster: Cluster, azure_env: AzureEnv, redis_url: str
) -> Iterator[DispatcherContext]:
    """The dispatcher's context with the Azure fakes (and their credential) and a collector."""
    collector = _serve(
        create_collector(CollectorSettings(signing_key=SIGNING_KEY, redis_url=redis_url))
    )
    settings = DispatcherSettings(
        signing_key=SIGNING_KEY,
        redis_url=redis_url,
        kubeconfig=str(k8s_cluster.kubeconfig),
        collector_url=f"http://127.0.0.1:{collector.server_port}",
        azure_account_url=azure_env.files.account_url,
        azure_vault_url=azure_env.vault.url,
        azure_ca_bundle=azure_env.vault.cert,
        storage_retry_backoff_s=0.05,
        watch_interval_s=0.2,
    )
    yield DispatcherContext(settings, Store.from_url(redis_url), azure_env.credential)
    collector.shutdown()


def write_config(folder: Path, namespace: str, account: str) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "trial.py").write_text(TRIAL)
    (folder / "space.json").write_text('{"x": {"_type": "uniform", "_value": [0, 1]}}')
    # The seed's experiment, with Azure storage instead of NFS and one small Worker.
    config = yaml.safe_load((EXAMPLES / "config_kubeflow.yml").read_text())
    config.update(trialConcurrency=1, maxTrialNum=1, searchSpacePath="space.json")
    config["trial"] = {
        "codeDir": "code",
        "worker": {
            "replicas": 1,
            "command": "python3 trial.py",
            "gpuNum": 0,
            "cpuNum": 1,
            "memoryMB": 256,
            "image": "x",
        },
    }
    config["kubeflowConfig"] = {
        "operator": "tf-operator",
        "apiVersion": "v1",
        "namespace": namespace,
        "storage": "azureStorage",
        "keyVault": {"vaultName": VAULT, "name": SECRET},
        "azureStorage": {"accountName": account, "azureShare": SHARE},
    }
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _secrets(api: client.ApiClient, namespace: str, exp_id: str) -> list[Any]:
    found = client.CoreV1Api(api).list_namespaced_secret(
        namespace, label_selector=names.selector(exp_id)
    )
    return list(found.items)


def test_azure_experiment_gets_its_storage_secret_and_volume_then_cleans_up(
    dispatcher: DispatcherContext,
    azure_env: AzureEnv,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    kubelet_factory: KubeletFactory,
    tmp_path: Path,
) -> None:
    # The pods' azureFile volume (secretName/shareName) is the fake share's folder.
    kubelet_factory(volumes={SHARE: azure_env.share_dir}, kill_grace=2)
    api_server = _serve(create_app(dispatcher))
    try:
        api = ApiClient(f"http://127.0.0.1:{api_server.server_port}", None)
        exp_id = api.submit(write_config(tmp_path / "exp", k8s_namespace, azure_env.files.account))
    finally:
        api_server.shutdown()
    store = dispatcher.store
    # The tuner's part, by hand: one trial under the tuner lease.
    assert store.acquire_lease(exp_id, "test-tuner", 60_000)
    trial = store.create_trial(
        owner="test-tuner", max_trials=1, exp_id=exp_id, parameter_id=0, parameters={"x": 0.25}
    )
    assert trial is not None
    assert launcher.launch_trial(dispatcher, exp_id, trial.id) == "launched"

    # The experiment's Secret holds the account name and the key from Key Vault.
    storage_secret = names.storage_secret_name(exp_id)
    by_name = {s.metadata.name: s for s in _secrets(k8s_api, k8s_namespace, exp_id)}
    assert storage_secret in by_name, sorted(by_name)
    data = {k: base64.b64decode(v).decode() for k, v in by_name[storage_secret].data.items()}
    assert data == {
        "azurestorageaccountname": azure_env.files.account,
        "azurestorageaccountkey": DEV_KEY,
    }
    # The job mounts the share with that Secret.
    handle = parse_handle(store.get_trial(exp_id, trial.id).job)
    assert handle is not None
    job: Any = client.CustomObjectsApi(k8s_api).get_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", handle[2]
    )
    pod = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "azureFile" in v]
    assert volume["azureFile"] == {
        "secretName": storage_secret,
        "shareName": SHARE,
        "readOnly": False,
    }
    assert DEV_KEY not in str(job), "the account key must only be in the Secret"

    # The watcher follows the job to the end; the trial's metric came through the share's
    # staged runtime and the collector.
    stop = threading.Event()
    watching = threading.Thread(target=watch.run, args=(dispatcher, stop), daemon=True)
    watching.start()
    try:
        done = wait_until(
            lambda: (t := store.get_trial(exp_id, trial.id)).status.is_terminal and t,
            60,
            "the trial to end",
            interval=0.1,
        )
    finally:
        stop.set()
        watching.join(10)
    assert done.status.value == "SUCCEEDED", done.message
    assert done.final == pytest.approx(0.25)
    stdout = azure_env.share_dir / "kubesweep" / exp_id / "trials" / trial.id / "output"
    assert "azure trial x=0.25" in (stdout / "worker-0" / "stdout").read_text()

    # Cleanup (at DONE or stop) deletes the job and every Secret of the experiment.
    assert launcher.cleanup_experiment(dispatcher, exp_id) == "cleaned"
    assert _secrets(k8s_api, k8s_namespace, exp_id) == []
    jobs: Any = client.CustomObjectsApi(k8s_api).list_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", label_selector=names.selector(exp_id)
    )
    assert jobs["items"] == []
