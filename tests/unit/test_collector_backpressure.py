"""Back-pressure with a real collector (waitress, bounded threads) and a real Redis whose
writes are paused (``CLIENT PAUSE ... WRITE``): reports over the in-flight bound are answered
429 with ``Retry-After`` at once, and keepers' senders wait, retry and deliver every metric
exactly once."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from waitress.server import create_server

from kubesweep.messaging import ExperimentStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token
from kubesweep.trial.sender import Sender
from kubesweep_collector.app import create_app
from kubesweep_collector.pressure import InflightGate
from kubesweep_collector.settings import CollectorSettings

KEY = "backpressure-test-key"
EXP = "exp1"


@pytest.fixture
def collector(store: Store, redis_url: str) -> Iterator[tuple[str, Flask]]:
    settings = CollectorSettings(
        signing_key=KEY,  # type: ignore[arg-type]
        redis_url=redis_url,
        collector_threads=4,
        collector_max_inflight=2,
        collector_saturation_seconds=0.3,
    )
    app = create_app(settings)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", app  # type: ignore[union-attr]
    finally:
        server.close()
        thread.join(5)


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


def _post(base: str, trial: TrialRecord, sequence: int) -> tuple[int, dict[str, str], float]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"attempt": 1, "type": "PERIODICAL", "sequence": sequence, "value": 0.5}
    started = time.monotonic()
    conn.request(
        "POST",
        f"/api/v1/trials/{EXP}/{trial.id}/metrics",
        body=json.dumps(body),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {trial_token(KEY, EXP, trial.id, 1)}",
        },
    )
    response = conn.getresponse()
    response.read()
    return response.status, dict(response.getheaders()), time.monotonic() - started


def _wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_saturated_collector_answers_429_at_once(
    store: Store, collector: tuple[str, Flask]
) -> None:
    base, app = collector
    gate: InflightGate = app.extensions["kubesweep.gate"]
    (trial,) = _trials(store, 1)
    store.redis.client_pause(20_000, all=False)  # writes (and scripts) wait; reads go on
    try:
        answers: list[int] = []
        stuck = [
            threading.Thread(target=lambda s=s: answers.append(_post(base, trial, s)[0]))
            for s in range(2)
        ]
        for thread in stuck:
            thread.start()
        _wait_for(lambda: gate.inflight == 2)
        time.sleep(0.35)  # longer than collector_saturation_seconds: Redis is slow
        status, headers, took = _post(base, trial, 2)
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert took < 0.3  # refused at once, not after waiting for a slot
        assert store.get_trial(EXP, trial.id).intermediate_count == 0
    finally:
        store.redis.execute_command("CLIENT", "UNPAUSE")
    for thread in stuck:
        thread.join(10)
    assert sorted(answers) == [201, 201]  # the two in flight were written, not dropped
    assert _post(base, trial, 2)[0] == 201
    assert store.get_trial(EXP, trial.id).intermediate_count == 3
    assert gate.refused == 1


def test_keepers_wait_out_back_pressure_and_lose_nothing(
    store: Store, collector: tuple[str, Flask]
) -> None:
    base, app = collector
    gate: InflightGate = app.extensions["kubesweep.gate"]
    trials = _trials(store, 6)
    per_trial = 40
    log = logging.getLogger("test.sender")
    senders = [Sender(base, trial_token(KEY, EXP, t.id, 1), 60.0, log) for t in trials]
    for sender in senders:
        sender.start()
    store.redis.client_pause(1500, all=False)  # Redis stalls for 1.5 s mid-burst
    for sequence in range(per_trial):
        for trial, sender in zip(trials, senders, strict=True):
            body = {"attempt": 1, "type": "PERIODICAL", "sequence": sequence, "value": sequence}
            sender.post(f"/api/v1/trials/{EXP}/{trial.id}/metrics", body, batchable=True)
        time.sleep(0.01)
    assert all(sender.close(30) for sender in senders)
    assert gate.refused > 0  # back-pressure did happen
    assert [s.dropped for s in senders] == [0] * len(trials)
    assert sum(s.delivered for s in senders) == per_trial * len(trials)
    events = [e.event for e in store.read_events(EXP, count=10_000)]
    for trial in trials:
        sequences = [
            e.payload["sequence"]
            for e in events
            if e.trial_id == trial.id and e.type == "metric.intermediate"
        ]
        assert sequences == list(range(per_trial))  # all, once each, in order
        assert store.get_trial(EXP, trial.id).intermediate_count == per_trial
