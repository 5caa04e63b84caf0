"""Resume after the whole stack was stopped: every service and Redis (AOF on) go down
mid-experiment while local trials keep running; a new stack on the same Redis data and
ports, then ``kubesweep resume ID``, re-attaches the running trials (their commands run
once), rebuilds the tuner from the event log and finishes with exactly maxTrialNumber."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.client import ApiClient
from kubesweep.cli.main import main as kubesweep_main
from kubesweep.messaging import ExperimentStatus, TrialStatus
from kubesweep.store import Store
from kubesweep_dispatcher.platforms.local import keeper_alive

from .harness import (
    ChaosStack,
    Figures,
    all_events,
    leftovers,
    verify,
    wait_keepers_gone,
    wait_status,
    write_experiment,
)

pytestmark = pytest.mark.integration

TRIALS = 8
STEPS = 4
ENV = {"KUBESWEEP_TUNER_LEASE_MS": "4000", "KUBESWEEP_TUNER_SCAN_INTERVAL_S": "1"}


@pytest.fixture
def first(tmp_path: Path) -> Iterator[ChaosStack]:
    stack = ChaosStack(tmp_path / "stack", worker_concurrency=4, extra_env=ENV)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _kill_everything(stack: ChaosStack) -> None:
    for name in [child.name for child in stack.children]:
        stack.kill(name)


def test_resume_after_the_whole_stack_was_stopped(
    first: ChaosStack, tmp_path: Path, figures: Figures, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_experiment(
        tmp_path / "exp", trials=TRIALS, concurrency=3, sleep=1.0, steps=STEPS
    )
    exp_id = ApiClient(first.api_url, first.api_token).submit(config)
    store = Store.from_url(first.redis_url)
    deadline = time.monotonic() + 90
    while True:
        trials = store.list_trials(exp_id)
        done = [t for t in trials if t.status is TrialStatus.SUCCEEDED]
        running = [t for t in trials if t.status is TrialStatus.RUNNING and t.job]
        if len(done) >= 2 and len(running) >= 2:
            break
        assert time.monotonic() < deadline, [(t.id, t.status) for t in trials]
        time.sleep(0.1)

    # Everything but the trials goes: Redis, tuner, worker, watcher, collector, API.
    _kill_everything(first)
    figures.faults += 6
    store.redis.close()
    assert all(keeper_alive(t.job) for t in running), "the trials must outlive the stack"
    time.sleep(3.0)

    second = ChaosStack(
        first.workdir,
        redis_port=first.redis_port,
        api_port=first.api_port,
        collector_port=first.collector_port,
        api_token=first.api_token,
        signing_key=first.signing_key,
        worker_concurrency=4,
        extra_env=ENV,
        redis_argv=first.redis_argv,
    )
    try:
        second.start()
        assert store.experiment_status(exp_id) is ExperimentStatus.RUNNING
        code = kubesweep_main(
            ["--url", second.api_url, "--token", second.api_token, "resume", exp_id]
        )
        assert code == 0
        assert exp_id in capsys.readouterr().out
        status = wait_status(store, exp_id, {ExperimentStatus.DONE, ExperimentStatus.ERROR}, 180)
        assert status is ExperimentStatus.DONE
        verdict = verify(store, second.workdir / "storage", exp_id, TRIALS, STEPS)
        figures.experiments += 1
        figures.trials_lost += TRIALS - verdict.succeeded
        figures.duplicate_launches += verdict.duplicate_launches
        figures.duplicate_metrics += verdict.duplicate_metrics
        assert not verdict.problems, verdict.problems
        after = {t.id: t for t in store.list_trials(exp_id)}
        for trial in running:
            # Re-attached: the same keeper finished it, nothing launched it again.
            assert after[trial.id].job == trial.job
        events = all_events(store, exp_id)
        parameter_ids = sorted(
            int(e.payload["parameter_id"]) for e in events if e.type == "trial.waiting"
        )
        assert parameter_ids == list(range(TRIALS))
        assert wait_keepers_gone(store, exp_id) == []
    finally:
        second.stop()
    assert leftovers(second.workdir) == []
