"""Multi-objective experiments: the ``kubesweep: {objectives}`` block, the Pareto front, and
what tuners receive (the vector for NSGA-II / OptunaTPE, the first objective for the rest)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from kubesweep.config import parse_config
from kubesweep.config.extension import Objective, objectives_of
from kubesweep.errors import ConfigError
from kubesweep.records import TrialRecord
from kubesweep.results import dominates, optimize_mode, pareto_front, pareto_indices
from kubesweep_tuner.algorithms import create_tuner

BASE = """\
experimentName: mo
trialCommand: python3 trial.py
trialConcurrency: 1
tuner:
  name: {tuner}
{args}trainingService:
  platform: local
"""
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "k": {"_type": "choice", "_value": [1, 2]}}
TWO = [Objective(name="acc", direction="maximize"), Objective(name="lat", direction="minimize")]


def parse(extension: str, tuner: str = "NSGAII", args: str = "") -> Any:
    return parse_config(
        BASE.format(tuner=tuner, args=args) + extension, search_space=SPACE, source="c.yml"
    )


def test_objectives_block_is_parsed_and_ranks_by_the_first() -> None:
    spec = parse(
        "kubesweep:\n  objectives:\n    - {name: acc, direction: maximize}\n"
        "    - {name: lat, direction: minimize}\n"
    )
    assert objectives_of(spec.extension) == TWO
    assert optimize_mode(spec.model_dump(mode="json")) == "maximize"


@pytest.mark.parametrize(
    ("block", "field", "words"),
    [
        ("  objectives: []\n", "kubesweep.objectives", "non-empty list"),
        ("  objectives: accuracy\n", "kubesweep.objectives", "non-empty list"),
        ("  objectives:\n    - acc\n", "kubesweep.objectives[0]", "name and direction"),
        (
            "  objectives:\n    - {direction: maximize}\n",
            "kubesweep.objectives[0].name",
            "required",
        ),
        (
            "  objectives:\n    - {name: acc, direction: max}\n",
            "kubesweep.objectives[0].direction",
            "maximize or minimize",
        ),
        (
            "  objectives:\n    - {name: acc, direction: maximize, weight: 2}\n",
            "kubesweep.objectives[0]",
            "unknown key 'weight'",
        ),
        (
            "  objectives:\n    - {name: a, direction: maximize}\n"
            "    - {name: a, direction: minimize}\n",
            "kubesweep.objectives[1]",
            "listed twice",
        ),
        ("  objective: []\n", "kubesweep.objective", "did you mean 'objectives'"),
    ],
)
def test_bad_objectives_name_the_field(block: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse("kubesweep:\n" + block)
    assert err.value.field == field
    assert words in err.value.reason


def test_optimize_mode_must_agree_with_the_first_objective() -> None:
    block = "kubesweep:\n  objectives:\n    - {name: acc, direction: maximize}\n"
    args = "  classArgs:\n    optimize_mode: minimize\n"
    with pytest.raises(ConfigError) as err:
        parse(block, tuner="TPE", args=args)
    assert err.value.field == "tuner.classArgs.optimize_mode"
    assert "first objective" in err.value.reason
    ok = parse(block, tuner="TPE", args=args.replace("minimize", "maximize"))
    assert ok.tuner.class_args["optimize_mode"] == "maximize"


def _record(i: int, final: Any) -> TrialRecord:
    return TrialRecord(
        id=f"t{i}", experiment_id="e", seq=i, status="SUCCEEDED", parameter_id=i,
        parameters={"x": i}, created=0.0, final=final,
    )  # fmt: skip


def test_pareto_front_matches_brute_force() -> None:
    rng = random.Random(5)
    finals: list[Any] = [
        {"default": a, "acc": a, "lat": rng.choice([1, 2, 3, 4])}
        for a in (rng.random() for _ in range(60))
    ]
    finals += [{"default": 0.5}, 3.0, None, {"default": 1, "acc": float("nan"), "lat": 1}]
    trials = [_record(i, f) for i, f in enumerate(finals)]
    front = pareto_front(trials, TWO)
    scored = {f"t{i}": (-f["acc"], f["lat"]) for i, f in enumerate(finals[:60])}
    expected = {t for t, v in scored.items() if not any(dominates(w, v) for w in scored.values())}
    assert {p["trial_id"] for p in front} == expected
    assert [p["values"]["acc"] for p in front] == sorted(
        (p["values"]["acc"] for p in front), reverse=True
    )
    assert front[0]["parameters"] == {"x": int(front[0]["trial_id"][1:])}


def test_pareto_indices_keep_ties_and_drop_dominated() -> None:
    points = [[1, 2], [1, 2], [2, 1], [2, 2], [0, 5], [3, 3]]
    assert pareto_indices(points) == [0, 1, 2, 4]
    assert pareto_indices([]) == []
    for combo in itertools.permutations(points):
        assert sorted(map(tuple, (combo[i] for i in pareto_indices(list(combo))))) == sorted(
            [(0, 5), (1, 2), (1, 2), (2, 1)]
        )


@pytest.mark.parametrize("name", ["NSGAII", "OptunaTPE"])
def test_multi_objective_tuners_receive_the_vector(name: str) -> None:
    tuner: Any = create_tuner(name, {"seed": 1, "optimize_mode": "maximize"})
    tuner.set_objectives(TWO)
    tuner.update_search_space(SPACE)
    for pid in range(12):
        params = tuner.generate_parameters(pid)
        value = {"default": params["x"], "acc": params["x"], "lat": params["k"]}
        tuner.receive_trial_result(pid, params, value)
        tuner.trial_end(pid, True)
    tuner.receive_trial_result(99, {"x": 0.5, "k": 1}, {"default": 0.5})  # lacks objectives
    done = [t for t in tuner._study.trials if t.values is not None]
    assert len(tuner._study.directions) == 2
    assert len(done) == 12
    assert all(t.values == [-t.params["x"], [1, 2][t.params["k"]]] for t in done)


@pytest.mark.parametrize("name", ["TPE", "Random", "Evolution", "CMAES"])
def test_single_objective_tuners_use_the_first_objective(name: str) -> None:
    tuner = create_tuner(name, {"seed": 1, "optimize_mode": "maximize"})
    tuner.set_objectives(TWO)
    assert tuner.metric_to_loss({"default": 9.0, "acc": 0.25, "lat": 3}) == -0.25
    with pytest.raises(ValueError, match="'acc'"):
        tuner.metric_to_loss({"default": 9.0, "lat": 3})
    assert tuner.metric_to_losses({"default": 9.0, "acc": 0.25, "lat": 3}) == [-0.25, 3]
    tuner.update_search_space(SPACE)
    params = tuner.generate_parameters(0)
    tuner.receive_trial_result(0, params, {"default": 1.0, "acc": 0.3, "lat": 1})
    tuner.generate_parameters(1)
