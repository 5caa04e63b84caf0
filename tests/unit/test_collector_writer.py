"""The collector's metric writer against the real Redis: it records exactly what
``Store.record_metric`` records, and the two de-duplicate against each other."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from kubesweep import keys
from kubesweep.errors import ConflictError, NotFoundError
from kubesweep.messaging import ExperimentStatus, MetricType, TrialStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.store import Store
from kubesweep_collector.writer import Metric, MetricWriter, StoreUnavailableError

EXP = "exp1"
METRICS = [
    Metric(MetricType.PERIODICAL, 0, 0.1),
    Metric(MetricType.PERIODICAL, 1, {"default": 0.2, "loss": [1, 2]}),
    Metric(MetricType.PERIODICAL, 1, 0.3),  # a duplicate sequence: not recorded
    Metric(MetricType.FINAL, 0, {"default": 7, "precision": 0.9}),
]


def _trials(store: Store, count: int) -> list[TrialRecord]:
    store.create_experiment(
        ExperimentRecord(id=EXP, spec={}, status=ExperimentStatus.RUNNING, created=1.0, updated=1.0)
    )
    assert store.acquire_lease(EXP, "tuner", 60_000)
    made = []
    for index in range(count):
        record = store.create_trial(
            owner="tuner", max_trials=0, exp_id=EXP, parameter_id=index, parameters={"x": index}
        )
        assert record is not None
        made.append(record)
    return made


def _recorded(
    store: Store, trial_id: str
) -> tuple[dict[str, Any], list[tuple[str, Any]], set[str]]:
    fields = store.redis.hgetall(keys.trial(EXP, trial_id))
    kept = {
        k: v
        for k, v in fields.items()
        if k in {"final", "default_metric", "intermediate_count", "last_intermediate"}
    }  # type: ignore[union-attr]
    events = [
        (entry.event.type, entry.event.payload)
        for entry in store.read_events(EXP)
        if entry.event.trial_id == trial_id and entry.event.type.startswith("metric.")
    ]
    members: set[str] = store.redis.smembers(keys.dedup(EXP))  # type: ignore[assignment]
    own = {m.split(":", 1)[1] for m in members if m.startswith(f"{trial_id}:")}
    return kept, events, own


def test_writer_records_what_the_store_records(store: Store) -> None:
    by_store, by_writer = _trials(store, 2)
    writer = MetricWriter(store.redis, timeout=5)
    store_flags = [
        store.record_metric(
            EXP, by_store.id, attempt=1, metric_type=m.type, sequence=m.sequence, value=m.value
        )
        for m in METRICS
    ]
    writer_flags = writer.record(EXP, by_writer.id, 1, METRICS)
    assert writer_flags == store_flags == [True, True, False, True]
    assert _recorded(store, by_writer.id) == _recorded(store, by_store.id)
    assert store.get_trial(EXP, by_writer.id).default_metric == 7.0


def test_writer_and_store_deduplicate_each_other(store: Store) -> None:
    (trial,) = _trials(store, 1)
    writer = MetricWriter(store.redis, timeout=5)
    assert writer.record(EXP, trial.id, 1, METRICS[:1]) == [True]
    assert not store.record_metric(
        EXP, trial.id, attempt=1, metric_type=MetricType.PERIODICAL, sequence=0, value=0.1
    )
    assert store.record_metric(
        EXP, trial.id, attempt=1, metric_type=MetricType.PERIODICAL, sequence=5, value=0.5
    )
    assert writer.record(EXP, trial.id, 1, [Metric(MetricType.PERIODICAL, 5, 0.5)]) == [False]
    assert store.get_trial(EXP, trial.id).intermediate_count == 2


def test_writer_refuses_like_the_store(store: Store) -> None:
    (trial,) = _trials(store, 1)
    writer = MetricWriter(store.redis, timeout=5)
    with pytest.raises(NotFoundError):
        writer.record(EXP, "nosuch", 1, METRICS[:1])
    with pytest.raises(ConflictError, match="another attempt"):
        writer.record(EXP, trial.id, 2, METRICS[:1])
    assert store.transition_trial(
        EXP, trial.id, TrialStatus.FAILED, allowed_from=[TrialStatus.WAITING]
    )
    with pytest.raises(ConflictError, match="already finished"):
        writer.record(EXP, trial.id, 1, METRICS[:1])
    assert store.redis.xlen(keys.events(EXP)) == 3  # submitted, trial created, failed


def test_writer_reloads_its_script_after_a_flush(store: Store) -> None:
    (trial,) = _trials(store, 1)
    writer = MetricWriter(store.redis, timeout=5)
    assert writer.record(EXP, trial.id, 1, METRICS[:1]) == [True]
    store.redis.script_flush()
    assert writer.record(EXP, trial.id, 1, METRICS[3:]) == [True]


def test_writer_reports_redis_away_as_unavailable(store: Store) -> None:
    dead = redis.Redis(port=1, decode_responses=True)
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        MetricWriter(dead, timeout=1).record(EXP, "t1", 1, METRICS[:1])


def test_writer_reports_out_of_memory_as_unavailable(store: Store) -> None:
    (trial,) = _trials(store, 1)
    writer = MetricWriter(store.redis, timeout=5)
    store.redis.config_set("maxmemory", "1")
    try:
        with pytest.raises(StoreUnavailableError, match="OOM"):
            writer.record(EXP, trial.id, 1, METRICS[:1])
    finally:
        store.redis.config_set("maxmemory", "0")
    assert writer.record(EXP, trial.id, 1, METRICS[:1]) == [True]
