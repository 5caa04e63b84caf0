"""GridSearch, Batch, Evolution and Hyperband: the NNI rules each one reproduces."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms import TRIAL_BUDGET, NoMoreTrials, NotReady, create_tuner


def all_params(name: str, space: dict[str, Any], n: int, **args: Any) -> list[dict[str, Any]]:
    tuner = create_tuner(name, args)
    tuner.update_search_space(space)
    out = []
    for pid in range(n):
        try:
            out.append(tuner.generate_parameters(pid))
        except NoMoreTrials:
            break
    return out


def test_grid_matches_nni_code_not_its_docstring() -> None:
    # NNI's docstring example claims z gains 3 in epoch 2; NNI's code (reproduced here)
    # adds a midpoint only when it differs from *both* neighbours once quantised, so the
    # 3/4 point (value 3 == value at 1) is never added. See docs/algorithms.md.
    space = {
        "x": {"_type": "choice", "_value": [5, 7]},
        "y": {"_type": "normal", "_value": [0, 1]},
        "z": {"_type": "quniform", "_value": [2, 3, 1]},
    }
    got = [(p["x"], round(p["y"], 2), p["z"]) for p in all_params("GridSearch", space, 6)]
    assert got == [
        (5, 0.0, 2.0),
        (7, 0.0, 2.0),
        (5, -0.67, 2.0),
        (5, 0.67, 2.0),
        (7, -0.67, 2.0),
        (7, 0.67, 2.0),
    ]


def test_grid_finite_types_exhaust() -> None:
    space = {
        "q": {"_type": "quniform", "_value": [0, 10, 2.5]},
        "r": {"_type": "randint", "_value": [1, 3]},
    }
    got = all_params("GridSearch", space, 100)
    # NNI's refinement stops once an epoch adds no point: 0 and 10 are never reached.
    assert sorted((p["q"], p["r"]) for p in got) == [
        (q, r) for q in (2.5, 5.0, 7.5) for r in (1, 2)
    ]


def test_grid_uniform_refines_by_halving() -> None:
    got = [
        p["u"] for p in all_params("GridSearch", {"u": {"_type": "uniform", "_value": [0, 8]}}, 7)
    ]
    assert got == [4.0, 2.0, 6.0, 1.0, 3.0, 5.0, 7.0]


def test_grid_takes_no_class_args() -> None:
    with pytest.raises(ConfigError) as err:
        create_tuner("GridSearch", {"optimize_mode": "maximize"})
    assert err.value.field == "tuner.classArgs.optimize_mode"


def test_batch_yields_the_listed_dicts_in_order() -> None:
    rows = [{"lr": 0.1, "bs": 32}, {"lr": 0.01, "bs": 64}, {"lr": 0.1, "bs": 32}]
    space = {"combine_params": {"_type": "choice", "_value": rows}}
    assert all_params("Batch", space, 10) == rows[:2]  # the repeat is skipped
    with pytest.raises(ConfigError):
        create_tuner("Batch", {}).update_search_space(
            {**space, "other": {"_type": "choice", "_value": [1]}}
        )


def test_evolution_mutates_exactly_one_parameter_of_a_winner() -> None:
    space = {k: {"_type": "uniform", "_value": [0, 1]} for k in "abcd"}
    tuner = create_tuner(
        "Evolution", {"population_size": 4, "seed": 3, "optimize_mode": "minimize"}
    )
    tuner.update_search_space(space)
    first = []
    for pid in range(4):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, params["a"])
        first.append(params)
    for pid in range(4, 20):
        child = tuner.generate_parameters(pid)
        parents = [p for p in first if sum(p[k] != child[k] for k in "abcd") == 1]
        assert parents, "a child differs from some individual in exactly one parameter"
        tuner.receive_trial_result(pid, child, child["a"])
        first.append(child)


def test_evolution_replaces_failed_trials_with_random_individuals() -> None:
    tuner = create_tuner("Evolution", {"population_size": 2, "seed": 1})
    tuner.update_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    tuner.generate_parameters(0)
    tuner.generate_parameters(1)
    tuner.trial_end(0, False)
    tuner.generate_parameters(2)  # the replacement, not an error for an empty population


def test_hyperband_schedule_matches_nni_table() -> None:
    # NNI docstring, R=81, eta=3: bracket s=4 runs 81@1, 27@3, 9@9, 3@27, 1@81.
    tuner = create_tuner("Hyperband", {"R": 81, "eta": 3, "exec_mode": "serial", "seed": 0})
    tuner.update_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    budgets: list[int] = []
    pid = 0
    while len(budgets) < 81 + 27 + 9 + 3 + 1:
        batch = []
        while True:
            try:
                batch.append((pid, tuner.generate_parameters(pid)))
                pid += 1
            except NotReady:
                break
            if len(budgets) + len(batch) == 121:
                break
        for p, params in batch:
            budgets.append(params[TRIAL_BUDGET])
            tuner.receive_trial_result(p, params, params["x"])
            tuner.trial_end(p, True)
    counts = [budgets.count(b) for b in (1, 3, 9, 27, 81)]
    assert counts == [81, 27, 9, 3, 1]


def test_hyperband_promotes_the_best_by_final_metric() -> None:
    tuner = create_tuner("Hyperband", {"R": 9, "eta": 3, "exec_mode": "serial", "seed": 0})
    tuner.update_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    rung0 = [tuner.generate_parameters(pid) for pid in range(9)]
    with pytest.raises(NotReady):
        tuner.generate_parameters(9)
    for pid, params in enumerate(rung0[:8]):
        tuner.receive_trial_result(pid, params, params["x"])  # maximize: larger x is better
        tuner.trial_end(pid, True)
    with pytest.raises(NotReady):
        tuner.generate_parameters(9)  # trial 8 has neither a result nor an end yet
    tuner.receive_trial_result(8, rung0[8], rung0[8]["x"])  # a result settles it
    promoted = [tuner.generate_parameters(pid) for pid in range(9, 12)]
    best = sorted((p["x"] for p in rung0), reverse=True)[:3]
    assert [p["x"] for p in promoted] == best
    assert {p[TRIAL_BUDGET] for p in promoted} == {3}


def test_hyperband_parallelism_never_waits() -> None:
    tuner = create_tuner("Hyperband", {"R": 9, "eta": 3, "seed": 0})
    tuner.update_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    assert len([tuner.generate_parameters(pid) for pid in range(30)]) == 30


def test_hyperband_refuses_a_trial_budget_parameter() -> None:
    with pytest.raises(ConfigError):
        create_tuner("Hyperband", {}).update_search_space(
            {TRIAL_BUDGET: {"_type": "choice", "_value": [1]}}
        )
