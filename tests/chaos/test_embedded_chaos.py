"""Experiments on the embedded default while services are SIGKILLed and restarted at seeded
random moments: the tuner, a dispatcher worker, the watcher, the collector, the API and
Redis (AOF on). Every round must end DONE with exactly maxTrialNumber trials, each trial's
command run once, one final metric per SUCCEEDED trial and no duplicate intermediate."""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.client import ApiClient
from kubesweep.messaging import ExperimentStatus
from kubesweep.store import Store

from .conftest import FAULTS_PER_ROUND, ROUNDS
from .harness import (
    TARGETS,
    Chaos,
    ChaosStack,
    Figures,
    command_pids,
    diagnose,
    experiment_status,
    leftovers,
    process_alive,
    verify,
    wait_keepers_gone,
    wait_status,
    write_experiment,
)

pytestmark = pytest.mark.integration

TRIALS = 16
CONCURRENCY = 4
STEPS = 3
ENDED = {ExperimentStatus.DONE, ExperimentStatus.ERROR, ExperimentStatus.STOPPED}
# Faults still owed by rounds whose experiment finished before their quota was injected.
_owed = [0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    running = ChaosStack(
        tmp_path_factory.mktemp("chaos"),
        worker_concurrency=4,
        # A short lease so a restarted tuner takes over within seconds, as a replica would.
        extra_env={"KUBESWEEP_TUNER_LEASE_MS": "4000", "KUBESWEEP_TUNER_SCAN_INTERVAL_S": "1"},
    )
    with running:
        yield running


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_experiment_survives_random_faults(
    stack: ChaosStack, tmp_path: Path, figures: Figures, chaos_seed: int, round_no: int
) -> None:
    rng = random.Random(f"{chaos_seed}:{round_no}")
    stack.wait_healthy()
    config = write_experiment(
        # Trials long enough that on a quiet machine the round's faults land before DONE.
        tmp_path / "exp",
        trials=TRIALS,
        concurrency=CONCURRENCY,
        sleep=1.5,
        steps=STEPS,
    )
    exp_id = ApiClient(stack.api_url, stack.api_token).submit(config)
    store = Store.from_url(stack.redis_url)
    chaos = Chaos(stack, rng, figures)
    order = list(TARGETS)
    rng.shuffle(order)
    targets = itertools.cycle(order)
    quota = FAULTS_PER_ROUND + _owed[0]
    injected = 0
    while injected < quota:
        chaos.pause(0.3, 2.0)
        if experiment_status(store, exp_id) in ENDED:
            break
        if quota - injected >= 2 and rng.random() < 0.2:
            # Two services at once, e.g. the worker and Redis together.
            first, second = next(targets), next(targets)
            chaos.inject(first, second)
            injected += 2
        else:
            chaos.inject(next(targets))
            injected += 1
    _owed[0] = quota - injected
    context = f"seed {chaos_seed} round {round_no}, experiment {exp_id}:\n" + "\n".join(chaos.log)
    try:
        status: ExperimentStatus | None = wait_status(store, exp_id, ENDED, timeout=180)
    except AssertionError as exc:
        status = None
        context += f"\n{exc}\n{diagnose(stack, store, exp_id, f'{chaos_seed}-{round_no}')}"
    verdict = verify(store, stack.workdir / "storage", exp_id, TRIALS, STEPS)
    # Services that ended themselves (the worker after an unrecoverable broker error) and
    # that the embedded stack's supervisor started again, as Kubernetes would.
    for name in stack.restarts:
        figures.by_target[f"{name} exited by itself (restarted)"] += 1
    stack.restarts.clear()
    # Counted even when the round fails, so the summary line never hides a loss.
    figures.trials_lost += TRIALS - verdict.succeeded
    figures.duplicate_launches += verdict.duplicate_launches
    figures.duplicate_metrics += verdict.duplicate_metrics
    assert status is ExperimentStatus.DONE, "\n".join([context, *verdict.problems])
    figures.experiments += 1
    assert not verdict.problems, "\n".join([context, *verdict.problems])
    assert wait_keepers_gone(store, exp_id) == [], context


def test_stop_under_faults_leaves_no_trial_running(
    stack: ChaosStack, tmp_path: Path, figures: Figures, chaos_seed: int
) -> None:
    """A user stop after a few faults: every trial ends, and no keeper or trial command
    outlives the stop."""
    rng = random.Random(f"{chaos_seed}:stop")
    stack.wait_healthy()
    config = write_experiment(tmp_path / "exp", trials=40, concurrency=4, sleep=1.0, steps=3)
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(config)
    store = Store.from_url(stack.redis_url)
    chaos = Chaos(stack, rng, figures)
    order = list(TARGETS)
    rng.shuffle(order)
    for target in order[:4]:
        chaos.pause(0.5, 2.0)
        chaos.inject(target)
    stack.wait_healthy()
    client.stop(exp_id)
    context = f"seed {chaos_seed} stop round, experiment {exp_id}:\n" + "\n".join(chaos.log)
    assert wait_status(store, exp_id, {ExperimentStatus.STOPPED}, 60) is ExperimentStatus.STOPPED
    trials = store.list_trials(exp_id)
    assert all(t.status.is_terminal for t in trials), [(t.id, t.status) for t in trials]
    assert wait_keepers_gone(store, exp_id) == [], context
    commands = command_pids(stack.workdir / "storage", exp_id)
    assert commands, "no trial ever started"
    deadline = time.monotonic() + 30
    while alive := [pid for pid in commands if process_alive(pid)]:
        assert time.monotonic() < deadline, f"trial commands still running: {alive}\n{context}"
        time.sleep(0.2)


def test_a_service_that_exits_on_its_own_is_restarted(stack: ChaosStack) -> None:
    """What a worker does after Celery's unrecoverable broker error: it exits, and the
    embedded stack's supervisor starts a new one (as Kubernetes restarts the container)."""
    stack.wait_healthy()
    worker = stack.child("dispatcher-worker").process
    os.killpg(worker.pid, signal.SIGTERM)  # not through stack.kill: an unplanned exit
    deadline = time.monotonic() + 30
    while stack.restarts.count("dispatcher-worker") == 0:
        assert time.monotonic() < deadline, "the exited worker was not restarted"
        time.sleep(0.2)
    assert worker.poll() is not None
    assert stack.child("dispatcher-worker").process.pid != worker.pid
    stack.restarts.clear()
    stack.wait_healthy()


def test_nothing_left_running_after_stop(
    stack: ChaosStack, figures: Figures, chaos_seed: int
) -> None:
    # Rounds whose experiment ended before their quota leave faults owed: inject them now, one
    # service after another, each time waiting until the stack is healthy again.
    chaos = Chaos(stack, random.Random(f"{chaos_seed}:owed"), figures)
    for target in itertools.islice(itertools.cycle(TARGETS), max(0, _owed[0])):
        chaos.inject(target)
        stack.wait_healthy()
    if ROUNDS * FAULTS_PER_ROUND >= 30:
        assert figures.faults >= 30, f"only {figures.faults} faults injected"
        assert set(figures.by_target) == set(TARGETS), figures.by_target
    groups = stack.process_groups()
    stack.stop()
    assert leftovers(stack.workdir) == []
    import psutil

    assert [pid for pid in groups if psutil.pid_exists(pid)] == []
