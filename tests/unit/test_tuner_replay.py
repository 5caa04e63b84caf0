"""A tuner rebuilt from an experiment's event log proposes what the original would have."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from kubesweep.config import parse_config
from kubesweep.messaging import ExperimentStatus, MetricType, TrialStatus
from kubesweep.records import ExperimentRecord
from kubesweep.store import Store
from kubesweep_tuner.experiment import ExperimentRun

CONFIG = """\
experimentName: replay
trialCommand: python3 trial.py
trialConcurrency: 3
maxTrialNumber: 60
tuner:
  name: {tuner}
  classArgs:
    optimize_mode: maximize
    seed: 7
{extra}trainingService:
  platform: local
"""
SPACE = {
    "x": {"_type": "uniform", "_value": [-2, 2]},
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "units": {"_type": "choice", "_value": [16, 32, 64]},
    "layers": {"_type": "randint", "_value": [1, 5]},
}


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        self.sent.append((name, args))


def _objective(params: dict[str, Any]) -> float:
    return -((params["x"] - 0.5) ** 2) - params["layers"] * 0.01 + params["units"] / 640


def _catch_up(store: Store, run: ExperimentRun) -> None:
    while entries := store.read_events(run.id, run.cursor):
        for entry in entries:
            run.apply(entry)


def _waiting(store: Store) -> list[str]:
    return [t.id for t in store.list_trials("exp1") if t.status is TrialStatus.WAITING]


def _finish(store: Store, exp_id: str, trial_id: str, rng: random.Random) -> None:
    trial = store.get_trial(exp_id, trial_id)
    store.transition_trial(
        exp_id, trial_id, TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING]
    )
    if rng.random() < 0.85:
        store.record_metric(
            exp_id,
            trial_id,
            attempt=1,
            metric_type=MetricType.FINAL,
            sequence=0,
            value=_objective(trial.parameters),
        )
        end = TrialStatus.SUCCEEDED
    else:
        end = TrialStatus.FAILED
    store.transition_trial(exp_id, trial_id, end, allowed_from=[TrialStatus.RUNNING])


@pytest.mark.parametrize(
    ("tuner", "extra"),
    [
        ("TPE", "    tpe_args:\n      n_startup_jobs: 5\n"),
        ("Anneal", ""),
        ("Random", ""),
        ("OptunaTPE", "    n_startup_trials: 5\n"),
        ("CMAES", "    popsize: 4\n"),
        ("NSGAII", "    population_size: 6\n"),
    ],
)
def test_replayed_tuner_proposes_the_same_next_parameters(
    store: Store, tuner: str, extra: str
) -> None:
    spec = parse_config(CONFIG.format(tuner=tuner, extra=extra), search_space=SPACE)
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
    store.acquire_lease("exp1", "first", 60_000)
    original = ExperimentRun(store, RecordingSender(), "exp1", "first", 60.0)
    rng = random.Random(3)
    for _ in range(14):
        _catch_up(store, original)
        # Results that land after the tuner read the log but before it chooses: the log
        # order then differs from what the tuner had seen, which replay must respect.
        if _waiting(store) and rng.random() < 0.5:
            _finish(store, "exp1", rng.choice(_waiting(store)), rng)
        original.tick()
        waiting = _waiting(store)
        for trial_id in rng.sample(waiting, k=min(len(waiting), 2)):
            _finish(store, "exp1", trial_id, rng)
    _catch_up(store, original)
    assert len(original.trials) >= 20

    store.release_lease("exp1", "first")
    store.acquire_lease("exp1", "second", 60_000)
    replayed = ExperimentRun(store, RecordingSender(), "exp1", "second", 60.0)
    replayed.replay(store.read_events("exp1", count=100_000))

    assert replayed.next_parameter_id == original.next_parameter_id
    assert replayed.cursor == original.cursor
    next_id = original.next_parameter_id
    for offset in range(3):
        expected = original.tuner.generate_parameters(next_id + offset)
        assert replayed.tuner.generate_parameters(next_id + offset) == expected
