"""The Redis store against a real redis-server: records, fencing, dedup, streams, leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from kubesweep import keys
from kubesweep.errors import ConflictError, NotFoundError
from kubesweep.messaging import ExperimentStatus, MetricType, TrialStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.store import Store

OWNER = "tuner-a"
T = TypeVar("T")


def _experiment(store: Store, exp_id: str = "exp1", created: float | None = None) -> str:
    now = time.time() if created is None else created
    store.create_experiment(
        ExperimentRecord(
            id=exp_id,
            spec={"trialConcurrency": 2, "maxTrialNumber": 5},
            status=ExperimentStatus.INITIALIZED,
            created=now,
            updated=now,
        )
    )
    return exp_id


def _trial(
    store: Store, exp_id: str = "exp1", parameter_id: int = 0, max_trials: int = 0
) -> TrialRecord:
    assert store.acquire_lease(exp_id, OWNER, 60_000)
    trial = store.create_trial(
        owner=OWNER,
        max_trials=max_trials,
        exp_id=exp_id,
        parameter_id=parameter_id,
        parameters={"lr": 0.1, "layers": [1, 2]},
    )
    assert trial is not None
    return trial


def _event_types(store: Store, exp_id: str = "exp1") -> list[str]:
    return [entry.event.type for entry in store.read_events(exp_id)]


def _race(threads: int, work: Callable[[], T]) -> list[T]:
    """Run ``work`` in ``threads`` threads released together; return every result."""
    barrier = threading.Barrier(threads)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait()
            value = work()
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(value)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(30)
    assert not errors, errors
    return results


# experiments ---------------------------------------------------------------------------------


def test_create_and_get_experiment(store: Store) -> None:
    _experiment(store, "exp1", created=1000.0)
    record = store.get_experiment("exp1")
    assert record.id == "exp1"
    assert record.status is ExperimentStatus.INITIALIZED
    assert record.spec == {"trialConcurrency": 2, "maxTrialNumber": 5}
    assert record.created == 1000.0
    assert "exp1" in store.list_experiment_ids()
    assert "nope" not in store.list_experiment_ids()
    [entry] = store.read_events("exp1")
    assert entry.event.type == "experiment.submitted"
    assert entry.event.experiment_id == "exp1"


def test_get_unknown_experiment_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.get_experiment("nope")


def test_list_experiments_orders_by_creation_time(store: Store) -> None:
    _experiment(store, "late", created=3000.0)
    _experiment(store, "early", created=1000.0)
    _experiment(store, "middle", created=2000.0)
    assert store.list_experiment_ids() == ["early", "middle", "late"]


def test_transition_experiment_respects_allowed_from(store: Store) -> None:
    _experiment(store)
    assert store.transition_experiment(
        "exp1",
        ExperimentStatus.RUNNING,
        allowed_from=[ExperimentStatus.INITIALIZED],
        message="started",
    )
    record = store.get_experiment("exp1")
    assert record.status is ExperimentStatus.RUNNING
    assert record.message == "started"
    assert record.ended is None

    # Not allowed from RUNNING: refused, nothing changes, no event.
    events_before = _event_types(store)
    assert not store.transition_experiment(
        "exp1", ExperimentStatus.NO_MORE_TRIAL, allowed_from=[ExperimentStatus.INITIALIZED]
    )
    assert store.get_experiment("exp1").status is ExperimentStatus.RUNNING
    assert _event_types(store) == events_before

    assert store.transition_experiment(
        "exp1",
        ExperimentStatus.DONE,
        allowed_from=[ExperimentStatus.RUNNING, ExperimentStatus.NO_MORE_TRIAL],
        event_type="experiment.done",
        fields={"owner": "someone"},
    )
    done = store.get_experiment("exp1")
    assert done.status is ExperimentStatus.DONE
    assert done.ended is not None
    assert done.owner == "someone"
    last = store.read_events("exp1")[-1].event
    assert last.type == "experiment.done"
    assert last.payload["status"] == "DONE"


def test_transition_experiment_with_empty_allowed_from_accepts_any(store: Store) -> None:
    _experiment(store)
    assert store.transition_experiment("exp1", ExperimentStatus.ERROR, message="boom")
    assert store.get_experiment("exp1").status is ExperimentStatus.ERROR


def test_transition_unknown_experiment_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.transition_experiment("ghost", ExperimentStatus.RUNNING)
    assert store.read_events("ghost") == []


def test_experiment_statuses_in_one_call(store: Store) -> None:
    _experiment(store, "one")
    _experiment(store, "two")
    store.transition_experiment("two", ExperimentStatus.RUNNING)
    assert store.experiment_statuses(["one", "ghost", "two"]) == [
        ExperimentStatus.INITIALIZED,
        None,
        ExperimentStatus.RUNNING,
    ]
    assert store.experiment_statuses([]) == []
    assert store.experiment_status("two") is ExperimentStatus.RUNNING
    assert store.experiment_status("ghost") is None


# trials --------------------------------------------------------------------------------------


def test_create_trial_requires_the_lease(store: Store) -> None:
    _experiment(store)
    kwargs: dict[str, Any] = {
        "max_trials": 0,
        "exp_id": "exp1",
        "parameter_id": 0,
        "parameters": {"x": 1},
    }
    # Nobody holds the lease.
    assert store.create_trial(owner=OWNER, **kwargs) is None
    # Someone else holds it.
    assert store.acquire_lease("exp1", "tuner-b", 60_000)
    assert store.create_trial(owner=OWNER, **kwargs) is None
    assert store.count_trials("exp1") == 0
    assert _event_types(store) == ["experiment.submitted"]
    # The holder may create.
    trial = store.create_trial(owner="tuner-b", **kwargs)
    assert trial is not None
    assert store.count_trials("exp1") == 1


def test_create_trial_records_a_waiting_trial_and_its_event(store: Store) -> None:
    _experiment(store)
    first = _trial(store, parameter_id=7)
    second = _trial(store, parameter_id=8)
    assert (first.seq, second.seq) == (0, 1)
    stored = store.get_trial("exp1", second.id)
    assert stored == second
    assert stored.status is TrialStatus.WAITING
    assert stored.parameters == {"lr": 0.1, "layers": [1, 2]}
    assert stored.parameter_id == 8
    assert stored.attempt == 1

    waiting = [e.event for e in store.read_events("exp1") if e.event.type == "trial.waiting"]
    assert [e.trial_id for e in waiting] == [first.id, second.id]
    # The real sequence number replaces the placeholder, as a number.
    assert [e.payload["seq"] for e in waiting] == [0, 1]
    assert waiting[1].payload["parameter_id"] == 8
    assert waiting[1].payload["parameters"] == {"lr": 0.1, "layers": [1, 2]}
    assert [t.id for t in store.list_trials("exp1")] == [first.id, second.id]


def test_seq_placeholder_never_rewrites_parameters(store: Store) -> None:
    """A parameter whose value looks like the placeholder reaches the event stream intact."""
    _experiment(store)
    assert store.acquire_lease("exp1", OWNER, 60_000)
    params = {"optimizer": "__SEQ__", "nested": ["__SEQ__", {"k": "__SEQ__"}]}
    trial = store.create_trial(
        owner=OWNER, max_trials=0, exp_id="exp1", parameter_id=0, parameters=params
    )
    assert trial is not None
    assert store.get_trial("exp1", trial.id).parameters == params
    waiting = store.read_events("exp1")[-1].event
    assert waiting.payload == {"parameter_id": 0, "parameters": params, "seq": 0, "basis": ""}


def test_create_trial_respects_max_trials(store: Store) -> None:
    _experiment(store)
    made = [_trial(store, parameter_id=i, max_trials=3) for i in range(3)]
    assert [t.seq for t in made] == [0, 1, 2]
    assert (
        store.create_trial(owner=OWNER, max_trials=3, exp_id="exp1", parameter_id=3, parameters={})
        is None
    )
    assert store.count_trials("exp1") == 3
    assert _event_types(store).count("trial.waiting") == 3


def test_get_unknown_trial_is_not_found(store: Store) -> None:
    _experiment(store)
    with pytest.raises(NotFoundError):
        store.get_trial("exp1", "ghost")


def test_transition_trial_is_atomic_with_its_event(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    assert store.transition_trial(
        "exp1", trial.id, TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING]
    )
    running = store.get_trial("exp1", trial.id)
    assert running.status is TrialStatus.RUNNING
    assert running.started is not None
    assert running.ended is None

    assert store.transition_trial(
        "exp1",
        trial.id,
        TrialStatus.FAILED,
        allowed_from=[TrialStatus.RUNNING],
        fields={"exit_code": 3, "message": "bad", "job": None},
        payload={"exit_code": 3},
    )
    failed = store.get_trial("exp1", trial.id)
    assert failed.status is TrialStatus.FAILED
    assert failed.exit_code == 3
    assert failed.message == "bad"
    assert failed.ended is not None

    events = [e.event for e in store.read_events("exp1") if e.event.trial_id == trial.id]
    assert [e.type for e in events] == ["trial.waiting", "trial.running", "trial.failed"]
    assert events[-1].payload == {"status": "FAILED", "exit_code": 3}


def test_stale_trial_transition_is_refused_without_an_event(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    assert store.transition_trial(
        "exp1", trial.id, TrialStatus.USER_CANCELED, allowed_from=[TrialStatus.WAITING]
    )
    before = _event_types(store)
    # A keeper reporting success after the cancel is stale.
    assert not store.transition_trial(
        "exp1",
        trial.id,
        TrialStatus.SUCCEEDED,
        allowed_from=[TrialStatus.WAITING, TrialStatus.RUNNING],
        fields={"exit_code": 0},
    )
    after = store.get_trial("exp1", trial.id)
    assert after.status is TrialStatus.USER_CANCELED
    assert after.exit_code is None
    assert _event_types(store) == before


def test_transition_unknown_trial_is_not_found(store: Store) -> None:
    _experiment(store)
    with pytest.raises(NotFoundError):
        store.transition_trial(
            "exp1", "ghost", TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING]
        )
    assert _event_types(store) == ["experiment.submitted"]


def test_annotate_trial_keeps_status(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    assert store.annotate_trial(
        "exp1",
        trial.id,
        "trial.launched",
        allowed_from=[TrialStatus.WAITING],
        fields={"job": "ks-exp1-x", "launched": 12.5, "message": None},
        payload={"job": "ks-exp1-x"},
    )
    annotated = store.get_trial("exp1", trial.id)
    assert annotated.status is TrialStatus.WAITING
    assert annotated.job == "ks-exp1-x"
    assert annotated.launched == 12.5
    last = store.read_events("exp1")[-1].event
    assert (last.type, last.trial_id, last.payload) == (
        "trial.launched",
        trial.id,
        {"job": "ks-exp1-x"},
    )

    store.transition_trial("exp1", trial.id, TrialStatus.RUNNING, allowed_from=[])
    before = _event_types(store)
    assert not store.annotate_trial(
        "exp1", trial.id, "trial.launched", allowed_from=[TrialStatus.WAITING], fields={"job": "z"}
    )
    assert store.get_trial("exp1", trial.id).job == "ks-exp1-x"
    assert _event_types(store) == before
    with pytest.raises(NotFoundError):
        store.annotate_trial(
            "exp1", "ghost", "trial.launched", allowed_from=[], fields={"job": "z"}
        )


def test_claim_launch_is_exclusive_and_expires(store: Store) -> None:
    assert store.claim_launch("exp1", "t1", 1, ttl_ms=150)
    assert not store.claim_launch("exp1", "t1", 1, ttl_ms=150)
    # Another attempt or another trial is a different claim.
    assert store.claim_launch("exp1", "t1", 2, ttl_ms=150)
    assert store.claim_launch("exp1", "t2", 1, ttl_ms=150)
    assert 0 < store.redis.pttl(keys.launch_claim("exp1", "t1", 1)) <= 150  # type: ignore[operator]
    time.sleep(0.3)
    assert store.claim_launch("exp1", "t1", 1, ttl_ms=150)


def test_claim_launch_race_has_one_winner(store: Store) -> None:
    results = _race(8, lambda: store.claim_launch("exp1", "t1", 1, ttl_ms=10_000))
    assert sorted(results) == [False] * 7 + [True]


# metrics -------------------------------------------------------------------------------------


def test_record_metric_final_sets_final_and_default(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    value = {"default": 0.93, "loss": 0.1}
    assert store.record_metric(
        "exp1", trial.id, attempt=1, metric_type=MetricType.FINAL, sequence=0, value=value
    )
    recorded = store.get_trial("exp1", trial.id)
    assert recorded.final == value
    assert recorded.default_metric == 0.93
    assert recorded.intermediate_count == 0
    last = store.read_events("exp1")[-1].event
    assert last.type == "metric.final"
    assert last.trial_id == trial.id
    assert last.payload == {"sequence": 0, "value": value, "attempt": 1}


def test_record_metric_final_plain_number(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    assert store.record_metric(
        "exp1", trial.id, attempt=1, metric_type=MetricType.FINAL, sequence=0, value=2
    )
    recorded = store.get_trial("exp1", trial.id)
    assert recorded.final == 2
    assert recorded.default_metric == 2.0


def test_record_metric_periodical_counts(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    for seq, value in enumerate([0.5, 0.6, 0.7]):
        assert store.record_metric(
            "exp1",
            trial.id,
            attempt=1,
            metric_type=MetricType.PERIODICAL,
            sequence=seq,
            value=value,
        )
    recorded = store.get_trial("exp1", trial.id)
    assert recorded.intermediate_count == 3
    assert recorded.last_intermediate == 0.7
    assert recorded.final is None
    assert recorded.default_metric is None
    metrics = [e.event for e in store.read_events("exp1") if e.event.type.startswith("metric.")]
    assert [m.type for m in metrics] == ["metric.intermediate"] * 3
    assert [m.payload["sequence"] for m in metrics] == [0, 1, 2]


def test_record_metric_dedup(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)

    def report(kind: MetricType, seq: int, value: float) -> bool:
        return store.record_metric(
            "exp1", trial.id, attempt=1, metric_type=kind, sequence=seq, value=value
        )

    assert report(MetricType.PERIODICAL, 0, 0.5)
    before = _event_types(store)
    assert not report(MetricType.PERIODICAL, 0, 0.9)
    assert _event_types(store) == before
    recorded = store.get_trial("exp1", trial.id)
    assert recorded.intermediate_count == 1
    assert recorded.last_intermediate == 0.5
    # Same sequence, other type: a different report.
    assert report(MetricType.FINAL, 0, 0.8)
    assert not report(MetricType.FINAL, 0, 0.1)
    assert store.get_trial("exp1", trial.id).default_metric == 0.8


def test_record_metric_refusals_append_nothing(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    store.transition_trial(
        "exp1", trial.id, TrialStatus.RUNNING, allowed_from=[], fields={"attempt": 2}
    )
    before = _event_types(store)

    def report(trial_id: str, attempt: int) -> bool:
        return store.record_metric(
            "exp1",
            trial_id,
            attempt=attempt,
            metric_type=MetricType.FINAL,
            sequence=0,
            value=1.0,
        )

    with pytest.raises(NotFoundError):
        report("ghost", 1)
    with pytest.raises(ConflictError, match="another attempt"):
        report(trial.id, 1)
    assert report(trial.id, 2)
    store.transition_trial("exp1", trial.id, TrialStatus.SUCCEEDED, allowed_from=[])
    after_finish = _event_types(store)
    assert after_finish == [*before, "metric.final", "trial.succeeded"]
    with pytest.raises(ConflictError, match="finished"):
        store.record_metric(
            "exp1", trial.id, attempt=2, metric_type=MetricType.FINAL, sequence=1, value=5.0
        )
    assert _event_types(store) == after_finish
    assert store.get_trial("exp1", trial.id).default_metric == 1.0
    # The refused reports were not remembered as seen.
    assert store.redis.smembers(keys.dedup("exp1")) == {f"{trial.id}:2:FINAL:0"}


# events --------------------------------------------------------------------------------------


def test_read_events_in_order_with_cursor(store: Store) -> None:
    _experiment(store)
    trial = _trial(store)
    store.transition_trial("exp1", trial.id, TrialStatus.RUNNING, allowed_from=[])
    entries = store.read_events("exp1")
    assert [e.event.type for e in entries] == [
        "experiment.submitted",
        "trial.waiting",
        "trial.running",
    ]
    ids = [e.id for e in entries]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert [e.event.type for e in store.read_events("exp1", after=ids[0])] == [
        "trial.waiting",
        "trial.running",
    ]
    assert store.read_events("exp1", after=ids[-1]) == []
    assert [e.event.type for e in store.read_events("exp1", count=1)] == ["experiment.submitted"]


def test_read_events_blocks_until_an_event(store: Store, redis_url: str) -> None:
    _experiment(store)
    last = store.read_events("exp1")[-1].id
    other = Store.from_url(redis_url)
    timer = threading.Timer(
        0.2, lambda: other.transition_experiment("exp1", ExperimentStatus.RUNNING)
    )
    timer.start()
    try:
        entries = store.read_events("exp1", after=last, block_ms=5000)
    finally:
        timer.join()
    assert [e.event.type for e in entries] == ["experiment.updated"]


def test_read_many_tags_entries_with_their_experiment(store: Store) -> None:
    _experiment(store, "alpha")
    _experiment(store, "beta")
    store.transition_experiment("alpha", ExperimentStatus.RUNNING)
    store.transition_experiment("beta", ExperimentStatus.RUNNING)
    store.transition_experiment("beta", ExperimentStatus.STOPPING)
    out, no_submissions = store.read_many({"alpha": "0-0", "beta": "0-0"})
    assert no_submissions is None
    by_exp: dict[str, list[str]] = {}
    for exp_id, entry in out:
        assert entry.event.experiment_id == exp_id
        by_exp.setdefault(exp_id, []).append(entry.event.payload.get("status", "submitted"))
    assert by_exp == {
        "alpha": ["submitted", "RUNNING"],
        "beta": ["submitted", "RUNNING", "STOPPING"],
    }
    beta_ids = [entry.id for exp_id, entry in out if exp_id == "beta"]
    rest, _ = store.read_many({"alpha": "$", "beta": beta_ids[0]})
    assert [(e, x.id) for e, x in rest] == [("beta", i) for i in beta_ids[1:]]
    assert store.read_many({}) == ([], None)


def test_read_many_wakes_for_new_submissions(store: Store) -> None:
    cursor = store.submissions_cursor()
    _experiment(store, "alpha")
    entries, submitted = store.read_many({}, submissions_after=cursor, block_ms=1000)
    assert entries == []
    assert submitted is not None
    assert submitted != cursor
    assert store.read_many({}, submissions_after=submitted, block_ms=50) == ([], None)


# leases --------------------------------------------------------------------------------------


def test_lease_acquire_renew_refuse_release(store: Store) -> None:
    assert store.acquire_lease("exp1", "a", 10_000)
    assert store.acquire_lease("exp1", "a", 20_000)  # renewal by the owner
    assert store.redis.pttl(keys.tuner_lease("exp1")) > 10_000  # type: ignore[operator]
    assert not store.acquire_lease("exp1", "b", 10_000)
    store.release_lease("exp1", "b")  # not the owner: no effect
    assert store.redis.get(keys.tuner_lease("exp1")) == "a"
    assert not store.acquire_lease("exp1", "b", 10_000)
    store.release_lease("exp1", "a")
    assert store.redis.get(keys.tuner_lease("exp1")) is None
    assert store.acquire_lease("exp1", "b", 10_000)


def test_lease_expires(store: Store) -> None:
    _experiment(store)
    assert store.acquire_lease("exp1", "a", 100)
    assert not store.acquire_lease("exp1", "b", 100)
    time.sleep(0.25)
    # The old owner lost its fence: it can no longer create trials.
    assert (
        store.create_trial(owner="a", max_trials=0, exp_id="exp1", parameter_id=0, parameters={})
        is None
    )
    assert store.acquire_lease("exp1", "b", 10_000)
    assert not store.acquire_lease("exp1", "a", 10_000)


# concurrency ---------------------------------------------------------------------------------


def test_racing_create_trial_stops_at_max_trials(store: Store, redis_url: str) -> None:
    _experiment(store)
    assert store.acquire_lease("exp1", OWNER, 60_000)
    counter = iter(range(10_000))
    counter_lock = threading.Lock()

    def create_many() -> list[int]:
        own = Store.from_url(redis_url)
        seqs: list[int] = []
        for _ in range(10):
            with counter_lock:
                pid = next(counter)
            trial = own.create_trial(
                owner=OWNER, max_trials=20, exp_id="exp1", parameter_id=pid, parameters={"p": pid}
            )
            if trial is not None:
                seqs.append(trial.seq)
        return seqs

    results = _race(8, create_many)
    seqs = sorted(seq for batch in results for seq in batch)
    assert seqs == list(range(20))
    trials = store.list_trials("exp1")
    assert len(trials) == 20
    assert [t.seq for t in trials] == list(range(20))
    assert len({t.id for t in trials}) == 20
    waiting = [e.event for e in store.read_events("exp1") if e.event.type == "trial.waiting"]
    assert sorted(e.payload["seq"] for e in waiting) == list(range(20))
    by_id = {t.id: t.seq for t in trials}
    assert all(by_id[e.trial_id or ""] == e.payload["seq"] for e in waiting)


def test_racing_transition_trial_has_one_winner(store: Store, redis_url: str) -> None:
    _experiment(store)
    trial = _trial(store)

    def finish() -> bool:
        return Store.from_url(redis_url).transition_trial(
            "exp1",
            trial.id,
            TrialStatus.SUCCEEDED,
            allowed_from=[TrialStatus.WAITING, TrialStatus.RUNNING],
        )

    results = _race(8, finish)
    assert sorted(results) == [False] * 7 + [True]
    assert _event_types(store).count("trial.succeeded") == 1
    assert store.get_trial("exp1", trial.id).status is TrialStatus.SUCCEEDED
