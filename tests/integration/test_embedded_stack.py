"""The whole stack as real processes: Redis, Celery worker, tuner, collector, API."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store
from kubesweep_dispatcher.platforms.local import keeper_alive, parse_handle

from .helpers import event_counts, max_active, wait_for, write_experiment

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path / "stack") as running:
        yield running


def _check_exactly_once(store: Store, exp_id: str, expected: int) -> None:
    trials = store.list_trials(exp_id)
    assert len(trials) == expected
    assert sorted(t.seq for t in trials) == list(range(expected))
    counts = event_counts(store, exp_id)
    for trial in trials:
        assert trial.status.value == "SUCCEEDED", (trial.id, trial.status, trial.message)
        assert counts[("metric.final", trial.id)] == 1
        # No trial is launched twice. A worker killed between starting a keeper and
        # recording the launch leaves the record to the keeper's RUNNING report alone.
        assert counts[("trial.launched", trial.id)] <= 1
        assert counts[("trial.succeeded", trial.id)] == 1
        assert trial.final == pytest.approx(trial.parameters["x"])


def test_twenty_trials_at_concurrency_four(stack: EmbeddedStack, tmp_path: Path) -> None:
    config = write_experiment(tmp_path / "exp", trials=20, concurrency=4, sleep=0.05, steps=2)
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(config)
    exp = wait_for(client, exp_id, {"DONE", "ERROR", "STOPPED"}, timeout=120)
    assert exp["status"] == "DONE"
    store = Store.from_url(stack.redis_url)
    _check_exactly_once(store, exp_id, 20)
    assert max_active(store, exp_id) <= 4
    for trial in store.list_trials(exp_id):
        assert trial.intermediate_count == 2


def test_worker_killed_mid_experiment(stack: EmbeddedStack, tmp_path: Path) -> None:
    config = write_experiment(tmp_path / "exp", trials=20, concurrency=4, sleep=0.5, steps=2)
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(config)
    store = Store.from_url(stack.redis_url)
    deadline = time.monotonic() + 60
    while sum(t.status.value == "SUCCEEDED" for t in store.list_trials(exp_id)) < 4:
        assert time.monotonic() < deadline, "trials did not progress"
        time.sleep(0.1)
    stack.kill("dispatcher-worker")
    time.sleep(2.0)
    stack.respawn("dispatcher-worker")
    exp = wait_for(client, exp_id, {"DONE", "ERROR", "STOPPED"}, timeout=150)
    assert exp["status"] == "DONE"
    _check_exactly_once(store, exp_id, 20)
    assert max_active(store, exp_id) <= 4


def test_killed_keeper_fails_its_trial_and_the_experiment_goes_on(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    config = write_experiment(tmp_path / "exp", trials=3, concurrency=1, sleep=2.0, steps=1)
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(config)
    store = Store.from_url(stack.redis_url)
    deadline = time.monotonic() + 60
    while True:
        running = [t for t in store.list_trials(exp_id) if t.status.value == "RUNNING" and t.job]
        if running:
            break
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.05)
    victim = running[0]
    parsed = parse_handle(victim.job)
    assert parsed is not None
    os.kill(parsed[0], signal.SIGKILL)
    exp = wait_for(client, exp_id, {"DONE", "ERROR", "STOPPED"}, timeout=90)
    assert exp["status"] == "DONE"
    trials = {t.id: t for t in store.list_trials(exp_id)}
    assert len(trials) == 3
    assert trials[victim.id].status.value == "FAILED"
    assert "without reporting" in trials[victim.id].message
    assert sum(t.status.value == "SUCCEEDED" for t in trials.values()) == 2


def test_max_experiment_duration_ends_the_experiment(stack: EmbeddedStack, tmp_path: Path) -> None:
    config = write_experiment(tmp_path / "exp", trials=10, concurrency=2, sleep=60.0, steps=1)
    config.write_text(config.read_text() + "maxExperimentDuration: 4s\n")
    client = ApiClient(stack.api_url, stack.api_token)
    started = time.monotonic()
    exp_id = client.submit(config)
    exp = wait_for(client, exp_id, {"DONE", "ERROR", "STOPPED"}, timeout=60)
    assert exp["status"] == "DONE"
    assert "maxExecDuration" in exp["message"]
    assert time.monotonic() - started < 30
    store = Store.from_url(stack.redis_url)
    trials = store.list_trials(exp_id)
    assert len(trials) == 2
    assert {t.status.value for t in trials} == {"SYS_CANCELED"}
    deadline = time.monotonic() + 20
    while any(keeper_alive(t.job) for t in trials):
        assert time.monotonic() < deadline, "cancelled keepers still run"
        time.sleep(0.2)
