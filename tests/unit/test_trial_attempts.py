"""A trial's attempts: where each one writes (layout) and how the store starts a new one."""

from __future__ import annotations

import threading
import time

import pytest

from kubesweep.errors import ConflictError, NotFoundError
from kubesweep.messaging import ExperimentStatus, MetricType, TrialStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.store import Store
from kubesweep_dispatcher import layout

OWNER = "tuner-a"


def test_attempt_one_keeps_the_nni_layout_and_retries_get_their_own_folder() -> None:
    assert layout.output("e1", "t1", "worker", 0) == "kubesweep/e1/trials/t1/output/worker-0"
    assert layout.output("e1", "t1", "worker", 0, attempt=1) == layout.output(
        "e1", "t1", "worker", 0
    )
    assert (
        layout.output("e1", "t1", "worker", 2, attempt=3)
        == "kubesweep/e1/trials/t1/attempts/3/output/worker-2"
    )
    # parameter.cfg stays per trial: every attempt runs the same parameters.
    assert layout.parameter_file("e1", "t1") == "kubesweep/e1/trials/t1/parameter.cfg"
    folders = {layout.output("e1", "t1", "ps", 0, attempt=n) for n in range(1, 6)}
    assert len(folders) == 5
    with pytest.raises(ValueError, match="attempt"):
        layout.attempt_folder("e1", "t1", 0)


@pytest.mark.parametrize(
    ("shown", "attempt", "stored"),
    [
        ("output", 1, "output"),
        ("output/worker-0/stdout", 1, "output/worker-0/stdout"),
        ("output", 2, "attempts/2/output"),
        ("output/worker-0/stdout", 3, "attempts/3/output/worker-0/stdout"),
        ("attempts/1/output/ps-0/stdout", 3, "output/ps-0/stdout"),
        ("attempts/1/output", 2, "output"),
        ("attempts/2/output/ps-0/stdout", 3, "attempts/2/output/ps-0/stdout"),
        ("parameter.cfg", 4, "parameter.cfg"),
        ("outputs/x", 2, "outputs/x"),
        ("attempts", 2, "attempts"),
    ],
)
def test_files_api_paths_show_the_current_attempt(shown: str, attempt: int, stored: str) -> None:
    assert layout.stored_path(shown, attempt) == stored


# -- the store ------------------------------------------------------------------------------


def _trial(store: Store) -> TrialRecord:
    now = time.time()
    store.create_experiment(
        ExperimentRecord(
            id="exp1", spec={}, status=ExperimentStatus.RUNNING, created=now, updated=now
        )
    )
    assert store.acquire_lease("exp1", OWNER, 60_000)
    trial = store.create_trial(
        owner=OWNER, max_trials=0, exp_id="exp1", parameter_id=0, parameters={"x": 1}
    )
    assert trial is not None
    return trial


def _launch(store: Store, trial_id: str, job: str) -> None:
    assert store.annotate_trial(
        "exp1",
        trial_id,
        "trial.launched",
        allowed_from=[TrialStatus.WAITING],
        fields={"launched": repr(time.time()), "job": job},
    )


def _events(store: Store, trial_id: str) -> list[tuple[str, dict[str, object]]]:
    return [
        (e.event.type, e.event.payload)
        for e in store.read_events("exp1")
        if e.event.trial_id == trial_id
    ]


def test_retry_starts_the_next_attempt_unlaunched(store: Store) -> None:
    trial = _trial(store)
    _launch(store, trial.id, "kubeflow:ns/TFJob/ks-exp1-t@v1")
    assert store.transition_trial(
        "exp1", trial.id, TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING]
    )
    assert store.record_metric(
        "exp1", trial.id, attempt=1, metric_type=MetricType.PERIODICAL, sequence=0, value=0.5
    )
    assert store.retry_trial(
        "exp1", trial.id, attempt=1, message="attempt 1 evicted", reason="Evicted"
    )
    again = store.get_trial("exp1", trial.id)
    assert again.status is TrialStatus.WAITING
    assert again.attempt == 2
    assert (again.launched, again.job, again.started) == (None, "", None)
    assert (again.intermediate_count, again.last_intermediate) == (0, None)
    assert again.message == "attempt 1 evicted"
    assert again.parameters == trial.parameters
    assert again.seq == trial.seq
    kind, payload = _events(store, trial.id)[-1]
    assert kind == "trial.retrying"
    assert payload["attempt"] == 2
    assert payload["previous_attempt"] == 1
    assert payload["reason"] == "Evicted"
    # The old attempt's keeper can no longer report; the new one can, from sequence 0.
    with pytest.raises(ConflictError, match="another attempt"):
        store.record_metric(
            "exp1", trial.id, attempt=1, metric_type=MetricType.FINAL, sequence=0, value=1
        )
    assert store.record_metric(
        "exp1", trial.id, attempt=2, metric_type=MetricType.PERIODICAL, sequence=0, value=0.7
    )
    # A new launch claim for the new attempt.
    assert store.claim_launch("exp1", trial.id, 1, 10_000)
    assert store.claim_launch("exp1", trial.id, 2, 10_000)


def test_retry_is_refused_for_a_stale_attempt_or_an_ended_trial(store: Store) -> None:
    trial = _trial(store)
    assert store.retry_trial("exp1", trial.id, attempt=1, message="m")
    # A second watcher that still sees attempt 1 must not start a third attempt.
    assert not store.retry_trial("exp1", trial.id, attempt=1, message="m")
    assert store.get_trial("exp1", trial.id).attempt == 2
    assert store.transition_trial(
        "exp1", trial.id, TrialStatus.USER_CANCELED, allowed_from=[TrialStatus.WAITING]
    )
    assert not store.retry_trial("exp1", trial.id, attempt=2, message="m")
    ended = store.get_trial("exp1", trial.id)
    assert (ended.status, ended.attempt) == (TrialStatus.USER_CANCELED, 2)
    assert [k for k, _ in _events(store, trial.id)].count("trial.retrying") == 1
    with pytest.raises(NotFoundError):
        store.retry_trial("exp1", "nosuch", attempt=1, message="m")


def test_concurrent_retries_make_exactly_one_new_attempt(store: Store, redis_url: str) -> None:
    trial = _trial(store)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def retry() -> None:
        other = Store.from_url(redis_url)
        barrier.wait()
        results.append(other.retry_trial("exp1", trial.id, attempt=1, message="m"))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.get_trial("exp1", trial.id).attempt == 2
