"""The kubeflow platform end to end: the whole stack against the real kube-apiserver.

The services run for real (EmbeddedStack: Redis, API, Celery worker, tuner, collector,
watcher) with ``KUBESWEEP_KUBECONFIG`` pointing at the test cluster; the share is a loopback
nfs-ganesha that the dispatcher writes through NFS and whose export folder the process kubelet
maps for the pods' ``nfs`` volume. The fake operator turns jobs into pods; the kubelet runs
them (the keeper and the trial) as local processes. See docs/k8s-testing.md.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from werkzeug.serving import make_server

from kubesweep.cli.client import ApiClient, ApiError
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.records import TrialRecord
from kubesweep.store import Store
from kubesweep_dispatcher.api.app import create_app
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms.kubeflow import names
from kubesweep_dispatcher.platforms.kubeflow.cluster import served_versions
from kubesweep_dispatcher.platforms.kubeflow.platform import parse_handle
from kubesweep_dispatcher.settings import DispatcherSettings
from tests.fakes.ganesha import GaneshaServer
from tests.integration.helpers import event_counts, max_active, wait_for
from tests.k8s.cluster import crd_dir, wait_until
from tests.k8s.conftest import Cluster, KubeletFactory, RoleTokenFactory
from tests.k8s.fake_operator import FakeTrainingOperator
from tests.k8s.kubeapi import Watcher, request
from tests.k8s.process_kubelet import ProcessKubelet

pytestmark = pytest.mark.k8s

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kubeflow"
GROUP, VERSION = "kubeflow.org", "v1"
ENDED = {"DONE", "ERROR", "STOPPED"}

# Every replica runs it and reports; only the primary's keeper forwards the metrics, so
# each trial must end with exactly one final metric however many replicas it has.
TRIAL_SCRIPT = """\
import os, sys, time
import nni

params = nni.get_next_parameter()
role = os.environ.get("KUBESWEEP_REPLICA_TYPE", "?")
print(f"hello from {role}-{os.environ.get('KUBESWEEP_REPLICA_INDEX')} x={params['x']}")
print(f"stderr of {role}-{os.environ.get('KUBESWEEP_REPLICA_INDEX')}", file=sys.stderr, flush=True)
# A retried attempt may run shorter (RETRY_SLEEP), so an eviction test need not wait twice.
time.sleep(SLEEP if os.environ.get("KUBESWEEP_TRIAL_ATTEMPT", "1") == "1" else RETRY_SLEEP)
nni.report_intermediate_result(params["x"] / 2)
nni.report_final_result(params["x"])
"""


def write_experiment(
    folder: Path,
    seed: Path,
    *,
    namespace: str,
    nfs: GaneshaServer,
    trials: int = 6,
    concurrency: int = 3,
    sleep: float = 0.0,
    retry_sleep: float | None = None,
    image: str | None = None,
    extension: dict[str, Any] | None = None,
) -> Path:
    """The seed YAML, adapted so that the process kubelet can run it: a small NNI trial
    instead of MNIST, no GPUs, little memory, the test's namespace and ganesha. Roles,
    operator and storage type stay the seed's."""
    config = yaml.safe_load(seed.read_text())
    code = folder / "code"
    code.mkdir(parents=True)
    script = TRIAL_SCRIPT.replace(
        "RETRY_SLEEP", repr(sleep if retry_sleep is None else retry_sleep)
    )
    (code / "trial.py").write_text(script.replace("SLEEP", repr(sleep)))
    (folder / "search_space.json").write_text('{"x": {"_type": "uniform", "_value": [0, 1]}}')
    config.update(
        trialConcurrency=concurrency,
        maxTrialNum=trials,
        searchSpacePath="search_space.json",
    )
    config["trial"]["codeDir"] = "code"
    roles = [role for role in ("ps", "worker", "master", "chief") if role in config["trial"]]
    assert roles, "the seed has no roles"
    for role in roles:
        config["trial"][role].update(command="python3 trial.py", gpuNum=0, memoryMB=256)
        if image:
            config["trial"][role]["image"] = image
    kubeflow = config["kubeflowConfig"]
    kubeflow["nfs"] = {"server": nfs.host, "path": nfs.pseudo}
    kubeflow["namespace"] = namespace
    if extension:
        config["kubesweep"] = extension
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack(
    k8s_cluster: Cluster, nfs_server: GaneshaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    """The whole stack as processes (admin kubeconfig, the test ganesha), shared by the module:
    starting its five Python services costs 10-20 s on a small machine. Each test has its own
    namespace, operator, kubelet and experiment, so they stay independent."""
    env = {
        "KUBESWEEP_KUBECONFIG": str(k8s_cluster.kubeconfig),
        "KUBESWEEP_NFS_PORT": str(nfs_server.port),
        "KUBESWEEP_NFS_VERSION": "4.1",
        "KUBESWEEP_STORAGE_RETRY_BACKOFF_S": "0.05",
        "KUBESWEEP_WATCH_INTERVAL_S": "0.3",
    }
    with EmbeddedStack(tmp_path_factory.mktemp("stack"), extra_env=env) as running:
        yield running


@pytest.fixture
def nfs_kubelet(kubelet_factory: KubeletFactory, nfs_server: GaneshaServer) -> ProcessKubelet:
    """A process kubelet that mounts the ganesha export for the pods' ``nfs`` volume."""
    # A short kill grace: the keeper forwards SIGTERM to the trial, which exits at once.
    return kubelet_factory(
        volumes={f"{nfs_server.host}:{nfs_server.pseudo}": nfs_server.export_dir}, kill_grace=2
    )


@dataclass(frozen=True)
class Rig:
    """One test's side of the cluster (its namespace, operator and kubelet are running) and
    clients of the module's stack."""

    stack: EmbeddedStack
    k8s: client.ApiClient
    namespace: str
    nfs: GaneshaServer
    folder: Path
    api: ApiClient
    store: Store

    def config(self, seed: str, **options: Any) -> Path:
        """The seed YAML ``examples/kubeflow/<seed>`` adapted to this test (write_experiment)."""
        return write_experiment(
            self.folder / "exp", EXAMPLES / seed, namespace=self.namespace, nfs=self.nfs, **options
        )


@pytest.fixture
def rig(
    stack: EmbeddedStack,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    nfs_kubelet: ProcessKubelet,
    nfs_server: GaneshaServer,
    tmp_path: Path,
) -> Rig:
    return Rig(
        stack=stack,
        k8s=k8s_api,
        namespace=k8s_namespace,
        nfs=nfs_server,
        folder=tmp_path,
        api=ApiClient(stack.api_url, stack.api_token),
        store=Store.from_url(stack.redis_url),
    )


def _plural(kind: str) -> str:
    return {"TFJob": "tfjobs", "PyTorchJob": "pytorchjobs"}[kind]


def leftovers(api: client.ApiClient, namespace: str, exp_id: str) -> list[str]:
    """The experiment's jobs and Secrets still in the namespace."""
    selector = names.selector(exp_id)
    found = []
    for plural in ("tfjobs", "pytorchjobs"):
        jobs: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, label_selector=selector
        )
        found += [f"{plural}/{j['metadata']['name']}" for j in jobs["items"]]
    secrets = client.CoreV1Api(api).list_namespaced_secret(namespace, label_selector=selector)
    found += [f"secrets/{s.metadata.name if s.metadata else '?'}" for s in secrets.items]
    return found


def assert_cleaned_up(api: client.ApiClient, namespace: str, exp_id: str) -> None:
    # The cleanup task runs on the worker right after the experiment ends.
    wait_until(lambda: not leftovers(api, namespace, exp_id), 30, "the experiment's cleanup")


def assert_all_succeeded_once(store: Store, exp_id: str, expected: int) -> list[TrialRecord]:
    trials = store.list_trials(exp_id)
    assert len(trials) == expected
    counts = event_counts(store, exp_id)
    for trial in trials:
        assert trial.status.value == "SUCCEEDED", (trial.id, trial.status, trial.message)
        assert counts[("metric.final", trial.id)] == 1, trial.id
        assert counts[("trial.launched", trial.id)] == 1, trial.id
        assert counts[("trial.succeeded", trial.id)] == 1, trial.id
        assert trial.final == pytest.approx(trial.parameters["x"])
    return trials


class JobRecorder:
    """Every job name the API server ever held in a namespace (a watch, so a job created and
    deleted between two polls is still seen)."""

    def __init__(self, api: client.ApiClient, namespace: str, plural: str) -> None:
        self.created: list[str] = []
        self._lock = threading.Lock()
        self._watcher = Watcher(
            api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}", self._on, "jobs"
        )

    def _on(self, event: str, job: dict[str, Any]) -> None:
        if event == "ADDED":
            with self._lock:
                if job["metadata"]["name"] not in self.created:
                    self.created.append(job["metadata"]["name"])

    def __enter__(self) -> JobRecorder:
        self._watcher.start()
        assert self._watcher.synced.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._watcher.stop()
        assert not self._watcher.errors, self._watcher.errors


def kubesweep_cli(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "kubesweep.cli.main", "--url", stack.api_url]
    argv += [f"--token={stack.api_token}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def wait_trial(
    store: Store, exp_id: str, predicate: Callable[[TrialRecord], bool], what: str, timeout: float
) -> TrialRecord:
    def found() -> TrialRecord | None:
        return next((t for t in store.list_trials(exp_id) if predicate(t)), None)

    trial: TrialRecord = wait_until(found, timeout, what, interval=0.1)
    return trial


# -- 1 + 7: the seed's experiments run to DONE; logs from storage ----------------------------


def test_seed_tfjob_experiment_runs_to_done_and_cleans_up(
    rig: Rig,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=6,
        concurrency=3,
    )
    api = rig.api
    with JobRecorder(rig.k8s, rig.namespace, "tfjobs") as jobs:
        exp_id = api.submit(config)
        exp = wait_for(api, exp_id, ENDED, timeout=60)
        assert exp["status"] == "DONE", exp
        assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    store = rig.store
    trials = assert_all_succeeded_once(store, exp_id, 6)
    assert max_active(store, exp_id) <= 3
    # One TFJob per trial, named as recorded, nothing else.
    handles = [parse_handle(t.job) for t in trials]
    assert sorted(h[2] for h in handles if h) == sorted(jobs.created)
    assert {h[1] for h in handles if h} == {"TFJob"}

    # 7: the logs outlive the pods and jobs: read from the share (the API's files endpoint,
    # and `kubesweep trial log`, which picks the primary replica).
    trial = trials[0]
    folders = {e["name"] for e in api.files(exp_id, trial.id, "output")["entries"]}
    assert folders == {"worker-0", "ps-0"}, folders
    stdout = api.read_file(exp_id, trial.id, "output/ps-0/stdout")
    assert f"hello from PS-0 x={trial.parameters['x']}" in stdout
    shown = kubesweep_cli(rig.stack, "trial", "log", exp_id, trial.id)
    assert shown.returncode == 0, shown.stderr
    assert f"hello from Worker-0 x={trial.parameters['x']}" in shown.stdout


def test_seed_pytorchjob_experiment_runs_to_done_and_cleans_up(
    rig: Rig,
) -> None:
    config = rig.config(
        "config_pytorch.yml",
        trials=6,
        concurrency=3,
    )
    api = rig.api
    with JobRecorder(rig.k8s, rig.namespace, "pytorchjobs") as jobs:
        exp_id = api.submit(config)
        exp = wait_for(api, exp_id, ENDED, timeout=60)
        assert exp["status"] == "DONE", exp
        assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    store = rig.store
    trials = assert_all_succeeded_once(store, exp_id, 6)
    assert max_active(store, exp_id) <= 3
    assert len(jobs.created) == 6
    trial = trials[-1]
    shown = kubesweep_cli(rig.stack, "trial", "log", exp_id, trial.id)
    assert shown.returncode == 0, shown.stderr
    assert f"hello from Master-0 x={trial.parameters['x']}" in shown.stdout
    worker = api.read_file(exp_id, trial.id, "output/worker-0/stdout")
    assert f"hello from Worker-0 x={trial.parameters['x']}" in worker


# -- 2 + 3: refused at submission ---------------------------------------------------------------


@pytest.fixture
def submit_api(
    k8s_cluster: Cluster, nfs_server: GaneshaServer, redis_url: str
) -> Iterator[Callable[[Path | None], ApiClient]]:
    """``submit_api(kubeconfig)``: the dispatcher's API in-process (a real HTTP server) with
    that kubeconfig, for tests that only submit: nothing of a refused experiment may run."""
    servers: list[Any] = []

    def start(kubeconfig: Path | None = None) -> ApiClient:
        settings = DispatcherSettings(
            signing_key="k" * 32,
            redis_url=redis_url,
            kubeconfig=str(kubeconfig or k8s_cluster.kubeconfig),
            nfs_port=nfs_server.port,
            storage_retry_backoff_s=0.05,
        )
        server = make_server(
            "127.0.0.1", 0, create_app(DispatcherContext.from_settings(settings)), threaded=True
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return ApiClient(f"http://127.0.0.1:{server.server_port}", None)

    yield start
    for server in servers:
        server.shutdown()


def _refused(api: ApiClient, config: Path) -> str:
    with pytest.raises(ApiError) as refused:
        api.submit(config)
    assert refused.value.status == 400, refused.value
    assert api.experiments() == [], "a refused experiment was recorded"
    return str(refused.value)


@pytest.fixture
def without_pytorchjob_crd(k8s_cluster: Cluster) -> Iterator[None]:
    """The PyTorchJob CRD deleted for one test, then installed again (and served) so the
    rest of the session sees the cluster as before."""
    api = k8s_cluster.api
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pytorchjobs.kubeflow.org"
    request(api, "DELETE", path)

    def gone() -> bool:
        try:
            request(api, "GET", path)
        except client.ApiException as error:
            return bool(error.status == 404)
        return False

    try:
        wait_until(gone, 30, "the PyTorchJob CRD to be deleted")
        # Discovery lags the deletion by a moment; the preflight reads discovery.
        wait_until(
            lambda: not served_versions(api, "PyTorchJob"), 30, "discovery to drop PyTorchJob"
        )
        yield
    finally:
        k8s_cluster.local.install_crds(api, crd_dir())


def test_missing_operator_crd_is_refused_at_submission(
    submit_api: Callable[[Path | None], ApiClient],
    without_pytorchjob_crd: None,
    k8s_namespace: str,
    nfs_server: GaneshaServer,
    tmp_path: Path,
) -> None:
    config = write_experiment(
        tmp_path / "exp",
        EXAMPLES / "config_pytorch.yml",
        namespace=k8s_namespace,
        nfs=nfs_server,
    )
    staged = nfs_server.export_dir / "kubesweep"
    before = set(staged.iterdir()) if staged.exists() else set()
    message = _refused(submit_api(None), config)
    assert "pytorch-operator" in message, message
    assert "pytorchjobs" in message, message
    after = set(staged.iterdir()) if staged.exists() else set()
    assert after == before, "a refused experiment was staged"


def test_rbac_without_create_tfjobs_is_refused_at_submission(
    submit_api: Callable[[Path | None], ApiClient],
    role_token: RoleTokenFactory,
    k8s_namespace: str,
    nfs_server: GaneshaServer,
    tmp_path: Path,
) -> None:
    # Everything the dispatcher needs except `create tfjobs`.
    identity = role_token(
        [
            {"apiGroups": ["kubeflow.org"], "resources": ["tfjobs"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        ]
    )
    config = write_experiment(
        tmp_path / "exp",
        EXAMPLES / "config_kubeflow.yml",
        namespace=k8s_namespace,
        nfs=nfs_server,
    )
    message = _refused(submit_api(identity.kubeconfig), config)
    assert "may not create tfjobs" in message, message
    assert repr(k8s_namespace) in message, message
    assert "Role" in message, message


# -- 4 + 5: what NNI leaves RUNNING or WAITING forever -----------------------------------------


def test_job_deleted_out_of_band_fails_its_trial(
    rig: Rig,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=1,
        concurrency=1,
        sleep=120,
    )
    api = rig.api
    exp_id = api.submit(config)
    store = rig.store
    running = wait_trial(
        store, exp_id, lambda t: t.status.value == "RUNNING", "a RUNNING trial", 60
    )
    handle = parse_handle(running.job)
    assert handle is not None
    namespace, kind, name, version = handle
    client.CustomObjectsApi(rig.k8s).delete_namespaced_custom_object(
        GROUP, version, namespace, _plural(kind), name, propagation_policy="Background"
    )
    exp = wait_for(api, exp_id, ENDED, timeout=60)
    assert exp["status"] == "DONE", exp
    trial = store.get_trial(exp_id, running.id)
    assert trial.status.value == "FAILED"
    assert "deleted outside kubesweep" in (trial.message or ""), trial.message
    assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    # The operator collected the pods and the kubelet stopped their processes.
    wait_until(
        lambda: not client.CoreV1Api(rig.k8s).list_namespaced_pod(rig.namespace).items,
        30,
        "the deleted job's pods to go",
    )


@pytest.mark.parametrize(
    ("image", "reason", "attempts"),
    [("unschedulable/x", "Unschedulable", 2), ("imagepullbackoff/x", "ImagePullBackOff", 1)],
)
def test_pending_pod_shows_why_then_is_retried_and_fails_at_the_pending_timeout(
    image: str,
    reason: str,
    attempts: int,
    rig: Rig,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=1,
        concurrency=1,
        image=image,
        extension={"job": {"pendingTimeout": 5, "maxAttempts": attempts}},
    )
    api = rig.api
    started = time.monotonic()
    store = rig.store
    with JobRecorder(rig.k8s, rig.namespace, "tfjobs") as jobs:
        exp_id = api.submit(config)
        waiting = wait_trial(
            store,
            exp_id,
            lambda t: t.status.value == "WAITING" and reason in (t.message or ""),
            f"the trial's message to say {reason}",
            30,
        )
        assert waiting.job, "the reason should come from the launched job's pods"
        exp = wait_for(api, exp_id, ENDED, timeout=30 + 15 * attempts)
        assert exp["status"] == "DONE", exp
        assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    trial = store.get_trial(exp_id, waiting.id)
    assert trial.status.value == "FAILED"
    assert trial.attempt == attempts
    assert "pending for over 5 s" in (trial.message or ""), trial.message
    assert reason in (trial.message or ""), trial.message
    assert f"(attempt {attempts} of {attempts})" in (trial.message or ""), trial.message
    # Each attempt is its own job; a retry is not a trial failure (one trial.failed, at the end).
    assert sorted(jobs.created) == sorted(
        names.job_name(exp_id, trial.id, n) for n in range(1, attempts + 1)
    )
    counts = event_counts(store, exp_id)
    assert counts[("trial.retrying", trial.id)] == attempts - 1
    assert counts[("trial.failed", trial.id)] == 1
    # Measured from the job's creationTimestamp, which has whole-second resolution.
    assert time.monotonic() - started >= 4 * attempts


# -- 6: dispatcher processes killed mid-experiment ----------------------------------------------


def test_worker_and_watcher_killed_mid_experiment_make_no_duplicate_job(
    rig: Rig,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=6,
        concurrency=3,
        sleep=1.0,
    )
    api = rig.api
    store = rig.store
    with JobRecorder(rig.k8s, rig.namespace, "tfjobs") as jobs:
        exp_id = api.submit(config)
        wait_trial(store, exp_id, lambda t: bool(t.job), "a launched trial", 60)
        # SIGKILL (no cleanup, no acks) while launches and watches are in flight.
        rig.stack.kill("dispatcher-worker")
        rig.stack.kill("dispatcher-watch")
        time.sleep(1.0)
        rig.stack.respawn("dispatcher-worker")
        rig.stack.respawn("dispatcher-watch")
        exp = wait_for(api, exp_id, ENDED, timeout=120)
        assert exp["status"] == "DONE", exp
        assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    trials = assert_all_succeeded_once(store, exp_id, 6)
    assert max_active(store, exp_id) <= 3
    handles = [parse_handle(t.job) for t in trials]
    assert sorted(jobs.created) == sorted(h[2] for h in handles if h), "a duplicate job"


# -- infrastructure failures: a new attempt; live logs -----------------------------------------


def _job_of(trial: TrialRecord) -> tuple[str, str, str, str]:
    handle = parse_handle(trial.job)
    assert handle is not None, trial.job
    return handle


def test_evicted_pod_is_retried_as_a_new_attempt_not_a_failure(
    rig: Rig,
    nfs_kubelet: ProcessKubelet,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=1,
        concurrency=1,
        sleep=60.0,
        retry_sleep=0.5,
        extension={"job": {"maxAttempts": 2}},
    )
    api = rig.api
    store = rig.store
    with JobRecorder(rig.k8s, rig.namespace, "tfjobs") as jobs:
        exp_id = api.submit(config)
        first = wait_trial(
            store, exp_id, lambda t: t.status.value == "RUNNING", "a RUNNING trial", 60
        )
        job = _job_of(first)[2]
        trial_dir = rig.nfs.export_dir / "kubesweep" / exp_id / "trials" / first.id
        first_stdout = trial_dir / "output" / "worker-0" / "stdout"
        wait_until(
            lambda: first_stdout.exists() and "hello" in first_stdout.read_text(),
            30,
            "attempt 1's worker to run",
        )
        nfs_kubelet.evict(f"{job}-worker-0")
        exp = wait_for(api, exp_id, ENDED, timeout=60)
        assert exp["status"] == "DONE", exp
        assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    trial = store.get_trial(exp_id, first.id)
    assert trial.status.value == "SUCCEEDED", (trial.status, trial.message)
    assert trial.attempt == 2
    assert trial.final == pytest.approx(trial.parameters["x"])
    counts = event_counts(store, exp_id)
    assert counts[("trial.retrying", trial.id)] == 1
    assert counts[("trial.failed", trial.id)] == 0
    assert counts[("metric.final", trial.id)] == 1
    assert counts[("trial.launched", trial.id)] == 2
    retry = next(e.event for e in store.read_events(exp_id) if e.event.type == "trial.retrying")
    assert "Evicted" in retry.payload["reason"], retry.payload
    assert jobs.created == [job, names.job_name(exp_id, trial.id, 2)]
    # Each attempt wrote its own folder; `output` (and `trial log`) show the last attempt.
    assert (trial_dir / "attempts" / "2" / "output" / "worker-0" / "stdout").exists()
    shown = kubesweep_cli(rig.stack, "trial", "log", exp_id, trial.id)
    assert shown.returncode == 0, shown.stderr
    assert f"hello from Worker-0 x={trial.parameters['x']}" in shown.stdout
    first_try = api.read_file(exp_id, trial.id, "attempts/1/output/worker-0/stdout")
    assert f"hello from Worker-0 x={trial.parameters['x']}" in first_try


def test_live_log_comes_from_the_pod_then_from_storage(
    rig: Rig,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=1,
        concurrency=1,
        sleep=60.0,
    )
    api = rig.api
    store = rig.store
    exp_id = api.submit(config)
    trial = wait_trial(store, exp_id, lambda t: t.status.value == "RUNNING", "a RUNNING trial", 60)

    # The pod log holds stdout *and* stderr (what `kubectl logs` shows); the keeper's copy on
    # storage holds stdout only. So the stderr line proves where the answer came from.
    def live() -> str | None:
        try:
            text = api.read_file(exp_id, trial.id, "output/worker-0/stdout")
        except ApiError:  # neither a log nor a file yet: the keeper has not started
            return None
        return text if "stderr of Worker-0" in text else None

    # (The job runs once any pod runs; the worker's trial may start seconds later.)
    text = wait_until(live, 30, "the worker's pod log through the API", interval=0.2)
    assert f"hello from Worker-0 x={trial.parameters['x']}" in text
    assert store.get_trial(exp_id, trial.id).status.value == "RUNNING"
    shown = kubesweep_cli(rig.stack, "trial", "log", exp_id, trial.id)
    assert shown.returncode == 0, shown.stderr
    assert "stderr of Worker-0" in shown.stdout
    api.stop(exp_id)  # (no need to wait for the trial's sleep)
    exp = wait_for(api, exp_id, ENDED, timeout=60)
    assert exp["status"] == "STOPPED", exp
    assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    # Trial ended, pods gone: the copy on storage.
    stored = api.read_file(exp_id, trial.id, "output/worker-0/stdout")
    assert f"hello from Worker-0 x={trial.parameters['x']}" in stored
    assert "stderr of Worker-0" not in stored
    assert "stderr of Worker-0" in api.read_file(exp_id, trial.id, "output/worker-0/stderr")


def test_cancel_deletes_the_job_and_stop_leaves_nothing(
    rig: Rig,
) -> None:
    config = rig.config(
        "config_kubeflow.yml",
        trials=3,
        concurrency=2,
        sleep=120,
    )
    api = rig.api
    store = rig.store
    exp_id = api.submit(config)

    def running() -> list[TrialRecord] | None:
        found = [t for t in store.list_trials(exp_id) if t.status.value == "RUNNING"]
        return found if len(found) == 2 else None

    first, second = wait_until(running, 60, "two RUNNING trials", interval=0.1)
    # Cancel one: its job and its token Secret go, the other trial's stay.
    api.cancel_trial(exp_id, first.id)
    objects = client.CustomObjectsApi(rig.k8s)

    def job_names() -> set[str]:
        jobs: Any = objects.list_namespaced_custom_object(
            GROUP, VERSION, rig.namespace, "tfjobs", label_selector=names.selector(exp_id)
        )
        return {j["metadata"]["name"] for j in jobs["items"]}

    wait_until(lambda: _job_of(first)[2] not in job_names(), 30, "the cancelled trial's job")
    assert _job_of(second)[2] in job_names()
    secrets = client.CoreV1Api(rig.k8s).list_namespaced_secret(
        rig.namespace, label_selector=names.selector(exp_id, first.id)
    )
    assert secrets.items == []
    assert store.get_trial(exp_id, first.id).status.value == "USER_CANCELED"
    # Stop: every job and Secret of the experiment goes, and with them the pods' processes.
    api.stop(exp_id)
    exp = wait_for(api, exp_id, ENDED, timeout=60)
    assert exp["status"] == "STOPPED", exp
    assert_cleaned_up(rig.k8s, rig.namespace, exp_id)
    wait_until(
        lambda: not client.CoreV1Api(rig.k8s).list_namespaced_pod(rig.namespace).items,
        30,
        "the pods to go",
    )
    statuses = {t.id: t.status.value for t in store.list_trials(exp_id)}
    assert statuses[first.id] == "USER_CANCELED"
    assert statuses[second.id] == "SYS_CANCELED"
