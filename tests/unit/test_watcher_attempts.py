"""The watcher's decisions on what a platform observes: retry as a new attempt, or fail.

Real Redis and the real Watcher; the platform is a scripted stand-in (what it reports is
the input of the decision table), and the launch task sender is a list. The same paths run
end to end against the API server in tests/k8s/test_kubeflow_platform.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubesweep.config import ExperimentSpec
from kubesweep.config.loader import load_config_file
from kubesweep.messaging import ExperimentStatus, MetricType, TrialStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.store import Store
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms.base import JobObservation, LaunchRequest, Platform
from kubesweep_dispatcher.settings import DispatcherSettings
from kubesweep_dispatcher.watch import RELAUNCH_AFTER_S, Watcher

SEED = Path(__file__).resolve().parents[2] / "examples" / "kubeflow" / "config_kubeflow.yml"


class ScriptedPlatform(Platform):
    name = "kubeflow"

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self.seen: JobObservation | None = None
        self.cancelled: list[tuple[str, int]] = []

    def observe(self, trial: TrialRecord) -> JobObservation | None:
        return self.seen

    def max_attempts(self, spec: ExperimentSpec) -> int:
        return self.attempts

    def pending_timeout(self, spec: ExperimentSpec) -> float:
        return 5.0

    def launch(self, request: LaunchRequest) -> str:
        raise AssertionError("the watcher never launches itself")

    def cancel(self, trial: TrialRecord) -> None:
        self.cancelled.append((trial.job, trial.attempt))

    def is_alive(self, trial: TrialRecord) -> bool | None:
        return True


@pytest.fixture
def setup(store: Store, redis_url: str) -> tuple[Watcher, ScriptedPlatform, list[str], str]:
    spec = load_config_file(SEED)
    now = time.time()
    store.create_experiment(
        ExperimentRecord(
            id="exp1",
            spec=spec.model_dump(mode="json"),
            status=ExperimentStatus.RUNNING,
            created=now,
            updated=now,
        )
    )
    assert store.acquire_lease("exp1", "tuner", 60_000)
    trial = store.create_trial(
        owner="tuner", max_trials=0, exp_id="exp1", parameter_id=0, parameters={"x": 1}
    )
    assert trial is not None
    ctx = DispatcherContext(DispatcherSettings(signing_key="k" * 32, redis_url=redis_url), store)
    platform = ScriptedPlatform(attempts=2)
    ctx._platforms["kubeflow"] = platform
    launches: list[str] = []
    watcher = Watcher(ctx, send_launch=lambda exp_id, trial_id: launches.append(trial_id))
    return watcher, platform, launches, trial.id


def _launch(store: Store, trial_id: str, job: str, *, ago: float = 0.0) -> None:
    assert store.annotate_trial(
        "exp1",
        trial_id,
        "trial.launched",
        allowed_from=[TrialStatus.WAITING, TrialStatus.RUNNING],
        fields={"launched": repr(time.time() - ago), "job": job},
    )


def test_an_eviction_retries_then_fails_at_the_limit(
    setup: tuple[Watcher, ScriptedPlatform, list[str], str], store: Store
) -> None:
    watcher, platform, launches, trial_id = setup
    _launch(store, trial_id, "job-1")
    platform.seen = JobObservation(
        True, TrialStatus.FAILED, "pod p: Evicted: low memory", retryable=True
    )
    assert watcher.sweep() == 1
    trial = store.get_trial("exp1", trial_id)
    assert (trial.status, trial.attempt, trial.job) == (TrialStatus.WAITING, 2, "")
    assert "attempt 1 of 2 ended by the cluster: pod p: Evicted" in trial.message
    assert platform.cancelled == [("job-1", 1)]
    assert launches == [trial_id]
    # Attempt 2 is evicted too: the limit is reached, the trial fails with the reason.
    _launch(store, trial_id, "job-2")
    assert watcher.sweep() == 1
    trial = store.get_trial("exp1", trial_id)
    assert trial.status is TrialStatus.FAILED
    assert trial.message == "pod p: Evicted: low memory (attempt 2 of 2)"
    assert platform.cancelled[-1] == ("job-2", 2)
    assert launches == [trial_id]


def test_a_trial_failure_is_never_retried(
    setup: tuple[Watcher, ScriptedPlatform, list[str], str], store: Store
) -> None:
    watcher, platform, launches, trial_id = setup
    _launch(store, trial_id, "job-1")
    platform.seen = JobObservation(True, TrialStatus.FAILED, "1 Worker replica(s) failed.")
    watcher.sweep()
    trial = store.get_trial("exp1", trial_id)
    assert (trial.status, trial.attempt) == (TrialStatus.FAILED, 1)
    assert launches == []


def test_a_trial_that_reported_its_final_result_is_not_run_again(
    setup: tuple[Watcher, ScriptedPlatform, list[str], str], store: Store
) -> None:
    watcher, platform, launches, trial_id = setup
    _launch(store, trial_id, "job-1")
    store.record_metric(
        "exp1", trial_id, attempt=1, metric_type=MetricType.FINAL, sequence=0, value=0.9
    )
    platform.seen = JobObservation(True, TrialStatus.FAILED, "pod p: Evicted", retryable=True)
    watcher.sweep()
    trial = store.get_trial("exp1", trial_id)
    assert (trial.status, trial.attempt, trial.final) == (TrialStatus.FAILED, 1, 0.9)
    assert launches == []


@pytest.mark.parametrize(("retryable", "attempt_after"), [(True, 2), (False, 1)])
def test_pending_timeout_retries_only_what_another_attempt_may_fix(
    setup: tuple[Watcher, ScriptedPlatform, list[str], str],
    store: Store,
    retryable: bool,
    attempt_after: int,
) -> None:
    watcher, platform, launches, trial_id = setup
    _launch(store, trial_id, "job-1", ago=10)
    reason = "pod p: Unschedulable: 0/1 nodes" if retryable else "pod p: InvalidImageName: x"
    platform.seen = JobObservation(
        True, None, reason, pending_since=time.time() - 10, retryable=retryable
    )
    watcher.sweep()
    trial = store.get_trial("exp1", trial_id)
    assert trial.attempt == attempt_after
    if retryable:
        assert trial.status is TrialStatus.WAITING
        assert f"pending for over 5 s: {reason}; retrying" in trial.message
    else:
        assert trial.status is TrialStatus.FAILED
        assert trial.message == f"pending for over 5 s: {reason}"
    assert platform.cancelled == [("job-1", 1)]
    assert launches == ([trial_id] if retryable else [])


def test_a_lost_retry_launch_is_sent_again(
    setup: tuple[Watcher, ScriptedPlatform, list[str], str],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watcher, platform, launches, trial_id = setup
    _launch(store, trial_id, "job-1")
    platform.seen = JobObservation(True, TrialStatus.FAILED, "pod p: Evicted", retryable=True)
    watcher.sweep()
    assert launches == [trial_id]
    watcher.sweep()  # launched a moment ago: not yet
    assert launches == [trial_id]
    # A restarted watcher (or the same one RELAUNCH_AFTER_S later) sends it again.
    fresh = Watcher(watcher.ctx, send_launch=lambda exp_id, tid: launches.append(tid))
    fresh.sweep()
    assert launches == [trial_id, trial_id]
    clock = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: clock + RELAUNCH_AFTER_S + 1)
    fresh.sweep()
    assert launches == [trial_id] * 3


def test_a_change_seen_before_the_job_is_recorded_is_looked_at_again(
    setup: tuple[Watcher, ScriptedPlatform, list[str], str], store: Store
) -> None:
    """The operator can mark a job Running before the worker has written the job's handle on
    the trial; the event must not wait for the next sweep."""
    watcher, platform, _launches, trial_id = setup
    watcher.sweep()  # (learns the experiment)
    platform.seen = JobObservation(True, TrialStatus.RUNNING, "")
    watcher.notify("exp1", trial_id)
    assert watcher.wait(0.5) == 0  # no job on the trial yet
    _launch(store, trial_id, "job-1")
    started = time.monotonic()
    assert watcher.wait(2.0) == 1  # the recheck, not a new event
    assert time.monotonic() - started < 1.0
    assert store.get_trial("exp1", trial_id).status is TrialStatus.RUNNING
