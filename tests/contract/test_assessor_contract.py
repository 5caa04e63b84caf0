"""The contract every registered assessor meets, run against each name in `assessors.available()`.

Scenario curves: six "reference" trials rise to 0.9 over 30 steps and complete; then a
clearly bad trial (flat at 0.1) must be stopped within the 30 steps, and a clearly better
trial (above every reference at every step) must never be. In minimize mode the same
curves are mirrored as ``1 - y``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from kubesweep.errors import ConfigError
from kubesweep_tuner.assessors import Assessor, AssessResult, available, create_assessor
from kubesweep_tuner.assessors.registry import required_args

ASSESSORS = available()
STEPS = 30
MINIMAL_ARGS: dict[str, Any] = {"epoch_num": STEPS}


def make(name: str, **class_args: Any) -> Assessor:
    base = {k: MINIMAL_ARGS[k] for k in required_args(name)}
    return create_assessor(name, {**base, **class_args})


def reference(i: int, t: int) -> float:
    return 0.9 * (1 - math.exp(-(t + 1) / (4 + i)))


def bad(_: int, t: int) -> float:
    return 0.1


def better(_: int, t: int) -> float:
    return 0.95 * (1 - math.exp(-(t + 1) / 2.0)) + 0.04


def run_trial(assessor: Assessor, trial_id: str, curve: Any, mode: str) -> int | None:
    """Feed the curve step by step; the step at which it was judged BAD, or None."""
    history: list[float] = []
    for t in range(STEPS):
        y = curve(0, t)
        history.append(y if mode == "maximize" else 1 - y)
        if assessor.assess_trial(trial_id, list(history)) is AssessResult.BAD:
            assessor.trial_end(trial_id, False)
            return t + 1
    assessor.trial_end(trial_id, True)
    return None


def with_references(name: str, mode: str) -> Assessor:
    assessor = make(name, optimize_mode=mode)
    for i in range(6):
        history = []
        for t in range(STEPS):
            y = reference(i, t)
            history.append(y if mode == "maximize" else 1 - y)
            assessor.assess_trial(f"ref{i}", list(history))
        assessor.trial_end(f"ref{i}", True)
    return assessor


@pytest.mark.parametrize("name", ASSESSORS)
def test_good_before_enough_data(name: str) -> None:
    assessor = make(name)
    assert assessor.assess_trial("t1", []) is AssessResult.GOOD
    for n in range(1, 8):  # nothing completed yet: nothing to compare against
        assert assessor.assess_trial("t1", [0.5] * n) is AssessResult.GOOD
    assert make(name).assess_trial("t2", [0.0]) is AssessResult.GOOD


@pytest.mark.parametrize("name", ASSESSORS)
@pytest.mark.parametrize("mode", ["maximize", "minimize"])
def test_bad_curve_stopped_better_curve_kept(name: str, mode: str) -> None:
    assessor = with_references(name, mode)
    assert run_trial(assessor, "better", better, mode) is None
    stopped_at = run_trial(assessor, "bad", bad, mode)
    assert stopped_at is not None
    assert stopped_at <= STEPS


@pytest.mark.parametrize("name", ASSESSORS)
def test_deterministic(name: str) -> None:
    def verdicts() -> list[AssessResult]:
        assessor = with_references(name, "maximize")
        out = []
        for trial, curve in (("a", bad), ("b", better), ("c", lambda i, t: reference(3, t))):
            history = [curve(0, t) for t in range(STEPS)]
            out += [assessor.assess_trial(trial, history[: n + 1]) for n in range(STEPS)]
            assessor.trial_end(trial, True)
        return out

    assert verdicts() == verdicts()


@pytest.mark.parametrize("name", ASSESSORS)
def test_trial_end_in_any_order(name: str) -> None:
    assessor = with_references(name, "maximize")
    assessor.trial_end("never-assessed", True)
    assessor.trial_end("never-assessed", False)
    assessor.assess_trial("x", [0.5, 0.6])
    assessor.trial_end("x", True)
    assessor.trial_end("x", True)  # repeated
    assessor.assess_trial("x", [0.5, 0.6, 0.7])  # after its end: no crash
    assessor.assess_trial("y", [{"default": 0.5}, {"default": 0.6, "other": 1}])  # NNI dicts
    assessor.assess_trial("z", [0.5, float("nan"), "junk"])  # type: ignore[list-item]


@pytest.mark.parametrize("name", ASSESSORS)
def test_failed_trials_do_not_set_the_bar(name: str) -> None:
    assessor = make(name)
    for i in range(6):  # excellent trials that all fail
        history = [0.99] * STEPS
        for n in range(STEPS):
            assessor.assess_trial(f"f{i}", history[: n + 1])
        assessor.trial_end(f"f{i}", False)
    if name == "ASHA":  # ASHA ranks every trial that reached a rung, as Ray's does
        return
    assert run_trial(assessor, "modest", lambda i, t: reference(0, t), "maximize") is None


@pytest.mark.parametrize("name", ASSESSORS)
@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"optimise_mode": "maximize"}, "assessor.classArgs.optimise_mode"),
        ({"optimize_mode": "max"}, "assessor.classArgs.optimize_mode"),
        ({"unknown_arg": 1}, "assessor.classArgs.unknown_arg"),
    ],
)
def test_invalid_class_args_name_the_field(name: str, args: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        make(name, **args)
    assert err.value.field == field


def test_registry_names_aliases_and_did_you_mean() -> None:
    assert {"Medianstop", "Curvefitting", "ASHA"} <= set(ASSESSORS)
    assert type(create_assessor("medianstop", {})) is type(create_assessor("MedianstopAssessor"))
    with pytest.raises(ConfigError, match="Did you mean 'Medianstop'") as err:
        create_assessor("Medianstp", {})
    assert err.value.field == "assessor.name"
    with pytest.raises(ConfigError, match="did you mean 'start_step'"):
        create_assessor("Medianstop", {"start_stp": 3})
    with pytest.raises(ConfigError) as err:
        create_assessor("Curvefitting", {})
    assert err.value.field == "assessor.classArgs.epoch_num"
