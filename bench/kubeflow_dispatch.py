"""Kubeflow dispatch latency against the real kube-apiserver (the tests/k8s tier).

For N concurrent trials (one experiment with trialConcurrency = maxTrialNumber = N, TPE's
random start) on the whole embedded stack (Redis, API, Celery worker, tuner, collector,
watcher) with the fake training operator:

- **dispatch**: the tuner's decision (its ``trial.waiting`` event, written right before the
  launch task is published) -> the TFJob's ADDED event on this script's own watch;
- **watcher lag**: a job condition change (``Running``, then ``Succeeded``, first seen on this
  script's watch) -> the trial's ``trial.running`` / ``trial.succeeded`` event in Redis.

Pods do not run: a status-only kubelet here marks each pod Running, then Succeeded after
``--hold`` s, and the fake operator turns pod phases into job conditions as the real one does.
Needs ``scripts/k8s-test-env.sh`` (skips with the reason otherwise).

    uv run python -m bench kubeflow_dispatch [--quick]
    uv run python bench/kubeflow_dispatch.py --levels 1 10 100 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.k8s.cluster import LocalCluster, crd_dir, missing_binaries, missing_crds, wait_until
from tests.k8s.fake_operator import FakeTrainingOperator
from tests.k8s.kubeapi import Watcher, request

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store
from kubesweep_dispatcher.platforms.kubeflow.platform import parse_handle

GROUP, VERSION = "kubeflow.org", "v1"


class StatusKubelet:
    """Plays the kubelet without processes: each new pod Running at once, Succeeded later."""

    def __init__(self, api: Any, namespace: str, hold: float) -> None:
        self.api, self.namespace, self.hold = api, namespace, hold
        self._seen: set[str] = set()
        self._watcher = Watcher(api, f"/api/v1/namespaces/{namespace}/pods", self._on, "kubelet")

    def _patch(self, name: str, phase: str) -> None:
        try:
            request(
                self.api,
                "PATCH",
                f"/api/v1/namespaces/{self.namespace}/pods/{name}/status",
                {"status": {"phase": phase}},
                content_type="application/merge-patch+json",
            )
        except Exception:  # deleted meanwhile
            return

    def _on(self, event: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if event != "ADDED" or name in self._seen:
            return
        self._seen.add(name)
        self._patch(name, "Running")
        timer = threading.Timer(self.hold, self._patch, args=(name, "Succeeded"))
        timer.daemon = True
        timer.start()

    def __enter__(self) -> StatusKubelet:
        self._watcher.start()
        self._watcher.synced.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._watcher.stop()


class JobTimes:
    """When this process first saw each job, and each of its conditions."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.added: dict[str, float] = {}
        self.conditions: dict[tuple[str, str], float] = {}
        self._watcher = Watcher(
            api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/tfjobs", self._on, "jobs"
        )

    def _on(self, event: str, job: dict[str, Any]) -> None:
        now = time.time()
        name = job["metadata"]["name"]
        self.added.setdefault(name, now)
        for condition in (job.get("status") or {}).get("conditions") or []:
            if condition.get("status") == "True":
                self.conditions.setdefault((name, condition["type"]), now)

    def __enter__(self) -> JobTimes:
        self._watcher.start()
        self._watcher.synced.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._watcher.stop()


def write_experiment(folder: Path, namespace: str, storage: Path, trials: int) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "trial.py").write_text("print('never run')\n")
    (folder / "space.json").write_text('{"x": {"_type": "uniform", "_value": [0, 1]}}')
    config = folder / "config.yml"
    config.write_text(
        f"""experimentName: bench-kubeflow-{trials}
searchSpaceFile: space.json
trialCodeDirectory: code
trialConcurrency: {trials}
maxTrialNumber: {trials}
tuner:
  name: TPE
trainingService:
  platform: kubeflow
  operator: tf-operator
  apiVersion: v1
  namespace: {namespace}
  storage:
    storageType: mounted
    path: {storage}
  worker:
    replicas: 1
    command: python3 trial.py
    cpuNumber: 1
    memorySize: 256mb
    dockerImage: bench/none
"""
    )
    return config


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:.0f} / {p95 * 1000:.0f} / {ordered[-1] * 1000:.0f}"


def run_level(
    stack: EmbeddedStack, cluster_api: Any, workdir: Path, trials: int, hold: float
) -> dict[str, Any]:
    namespace = f"bench-{trials}-{time.time_ns() % 10**6}"
    request(cluster_api, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    operator = FakeTrainingOperator(cluster_api, namespace).start()
    storage = workdir / f"storage-{namespace}"
    storage.mkdir()
    api = ApiClient(stack.api_url, stack.api_token)
    store = Store.from_url(stack.redis_url)
    try:
        with StatusKubelet(cluster_api, namespace, hold), JobTimes(cluster_api, namespace) as jobs:
            config = write_experiment(workdir / namespace, namespace, storage, trials)
            started = time.time()
            exp_id = api.submit(config)
            wait_until(
                lambda: api.experiment(exp_id)["status"] in ("DONE", "ERROR", "STOPPED"),
                120 + trials,
                f"{trials} trials",
                interval=0.2,
            )
            wall = time.time() - started
    finally:
        operator.stop()
    events: dict[tuple[str, str], float] = {}
    for entry in store.read_events(exp_id, count=100_000):
        event = entry.event
        if event.trial_id:
            events.setdefault((event.type, event.trial_id), event.ts)
    dispatch, running, ended = [], [], []
    for trial in store.list_trials(exp_id):
        handle = parse_handle(trial.job)
        if handle is None:
            continue
        name = handle[2]
        if name in jobs.added and ("trial.waiting", trial.id) in events:
            dispatch.append(jobs.added[name] - events[("trial.waiting", trial.id)])
        if (name, "Running") in jobs.conditions and ("trial.running", trial.id) in events:
            running.append(events[("trial.running", trial.id)] - jobs.conditions[(name, "Running")])
        if (name, "Succeeded") in jobs.conditions and ("trial.succeeded", trial.id) in events:
            ended.append(
                events[("trial.succeeded", trial.id)] - jobs.conditions[(name, "Succeeded")]
            )
    return {
        "trials": trials,
        "jobs": len(jobs.added),
        "wall": wall,
        "dispatch": dispatch,
        "lag": running + ended,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--with-1000", action="store_true", help="also 1000 concurrent trials")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each pod 'runs'")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 1 and 10 trials")
    args = parser.parse_args()
    levels = [1, 10] if args.quick else list(args.levels)
    if args.with_1000 and 1000 not in levels:
        levels.append(1000)
    hold = 0.5 if args.quick else args.hold
    reason = missing_binaries() or missing_crds()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="ks-bench-k8s-") as temp:
        workdir = Path(temp)
        (workdir / "cluster").mkdir()
        cluster = LocalCluster(workdir / "cluster")
        cluster.start()
        try:
            cluster_api = cluster.api_client()
            cluster.install_crds(cluster_api, crd_dir())
            env = {
                "KUBESWEEP_KUBECONFIG": str(cluster.kubeconfig),
                "KUBESWEEP_KUBEFLOW_PVC": "bench-claim",
            }
            with EmbeddedStack(workdir / "stack", extra_env=env) as stack:
                if not args.quick:
                    # One trial first: the typed client's first calls in each process cost
                    # 1-6 s (lazy pydantic validators), once per process, not per trial.
                    run_level(stack, cluster_api, workdir, 1, hold)
                results = [run_level(stack, cluster_api, workdir, n, hold) for n in levels]
        finally:
            cluster.stop()
    print(
        "| concurrent trials | jobs | dispatch p50 / p95 / max (ms) "
        "| watcher lag p50 / p95 / max (ms) | experiment wall (s) |"
    )
    print("|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result['trials']} | {result['jobs']} | {_stats(result['dispatch'])} "
            f"| {_stats(result['lag'])} | {result['wall']:.1f} |"
        )
    print(
        f"\ndispatch: trial.waiting -> TFJob ADDED on a watch; watcher lag: job condition "
        f"(Running, Succeeded) seen on a watch -> trial.running / trial.succeeded in Redis. "
        f"Pods 'run' {hold} s (status only). kube-apiserver 1.20.2, fake operator, one "
        "Celery worker (8 threads), one watcher."
        + (
            " Quick run: no warm-up trial, so the first level pays the clients' warm-up."
            if args.quick
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
