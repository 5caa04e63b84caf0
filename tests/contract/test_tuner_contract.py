"""The contract every registered tuner meets, run against each name in `registry.available()`.

Finite spaces: a tuner proposes each configuration at most once and then raises
`NoMoreTrials` (it does not start repeating).
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import pytest

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms import NoMoreTrials, Tuner, available, create_tuner

TUNERS = available()

SINGLE_TYPE_SPACES: dict[str, dict[str, Any]] = {
    "choice": {"_type": "choice", "_value": [1, "a", 2.5, True]},
    "randint": {"_type": "randint", "_value": [-3, 4]},
    "uniform": {"_type": "uniform", "_value": [-1.5, 2.0]},
    "quniform": {"_type": "quniform", "_value": [0, 10, 2.5]},
    "loguniform": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "qloguniform": {"_type": "qloguniform", "_value": [5, 1000, 5]},
    "normal": {"_type": "normal", "_value": [1.0, 2.0]},
    "qnormal": {"_type": "qnormal", "_value": [0.0, 3.0, 0.5]},
    "lognormal": {"_type": "lognormal", "_value": [0.0, 1.0]},
    "qlognormal": {"_type": "qlognormal", "_value": [1.0, 1.0, 2.0]},
}

NESTED_SPACE: dict[str, Any] = {
    "model": {
        "_type": "choice",
        "_value": [
            {
                "_name": "svm",
                "C": {"_type": "loguniform", "_value": [0.01, 100]},
                "kernel": {"_type": "choice", "_value": ["rbf", "linear"]},
            },
            {"_name": "tree", "depth": {"_type": "randint", "_value": [1, 8]}},
            "knn",
        ],
    },
    "lr": {"_type": "uniform", "_value": [0.0, 1.0]},
}

SMALL_FINITE = {
    "a": {"_type": "choice", "_value": [1, 2, 3]},
    "b": {"_type": "choice", "_value": ["x", "y"]},
}

QUADRATIC = {"x": {"_type": "uniform", "_value": [-10.0, 10.0]}}


def make(name: str, space: dict[str, Any], **class_args: Any) -> Tuner:
    tuner = create_tuner(name, {"seed": 1234, **class_args})
    tuner.update_search_space(space)
    return tuner


def is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


def run_sequential(tuner: Tuner, n: int, objective: Any) -> list[tuple[dict[str, Any], float]]:
    history = []
    for pid in range(n):
        params = tuner.generate_parameters(pid)
        value = objective(params)
        tuner.receive_trial_result(pid, params, value)
        tuner.trial_end(pid, True)
        history.append((params, value))
    return history


def pseudo_metric(params: dict[str, Any]) -> float:
    return (zlib.crc32(json.dumps(params, sort_keys=True).encode()) % 1000) / 1000


@pytest.mark.parametrize("name", TUNERS)
@pytest.mark.parametrize("kind", sorted(SINGLE_TYPE_SPACES))
def test_each_type_alone_yields_valid_plain_values(name: str, kind: str) -> None:
    spec = SINGLE_TYPE_SPACES[kind]
    tuner = make(name, {"p": spec})
    args = spec["_value"]
    finite_size = {"choice": 4, "randint": 7}.get(kind, 30)
    for params, _ in run_sequential(tuner, finite_size, pseudo_metric):
        assert list(params) == ["p"]
        v = params["p"]
        json.dumps(params)  # plain JSON types, no numpy scalars
        if kind == "choice":
            assert any(type(v) is type(o) and v == o for o in args)
            continue
        if kind == "randint":
            assert type(v) is int
            assert args[0] <= v < args[1]
            continue
        assert type(v) is float
        assert math.isfinite(v)
        if kind in ("uniform", "loguniform", "quniform", "qloguniform"):
            assert args[0] <= v <= args[1]
        if kind.startswith("q"):
            assert is_multiple(v, args[-1])
        if kind == "lognormal":
            assert v > 0
        if kind == "qlognormal":
            assert v >= 0


@pytest.mark.parametrize("name", TUNERS)
def test_nested_choice_yields_valid_nested_dicts(name: str) -> None:
    tuner = make(name, NESTED_SPACE)
    seen_names = set()
    for params, _ in run_sequential(tuner, 40, pseudo_metric):
        assert set(params) == {"model", "lr"}
        model = params["model"]
        if model == "knn":
            seen_names.add("knn")
            continue
        assert isinstance(model, dict)
        seen_names.add(model["_name"])
        if model["_name"] == "svm":
            assert set(model) == {"_name", "C", "kernel"}
            assert 0.01 <= model["C"] <= 100
            assert model["kernel"] in ("rbf", "linear")
        else:
            assert model == {"_name": "tree", "depth": model["depth"]}
            assert type(model["depth"]) is int
            assert 1 <= model["depth"] < 8
    assert seen_names == {"svm", "tree", "knn"}


@pytest.mark.parametrize("name", TUNERS)
def test_same_seed_gives_same_suggestions(name: str) -> None:
    def objective(p: dict[str, Any]) -> float:
        return float((p["lr"] - 0.3) ** 2)

    first = run_sequential(make(name, NESTED_SPACE), 30, objective)
    second = run_sequential(make(name, NESTED_SPACE), 30, objective)
    assert [p for p, _ in first] == [p for p, _ in second]
    other = create_tuner(name, {"seed": 99})
    other.update_search_space(NESTED_SPACE)
    assert [p for p, _ in run_sequential(other, 30, objective)] != [p for p, _ in first]


@pytest.mark.parametrize("name", TUNERS)
def test_failed_trials_without_results_do_not_block(name: str) -> None:
    tuner = make(name, NESTED_SPACE)
    run_sequential(tuner, 22, pseudo_metric)
    for pid in range(100, 106):
        tuner.generate_parameters(pid)
    for pid in range(100, 104):
        tuner.trial_end(pid, False)
    tuner.receive_trial_result(104, tuner.generate_parameters(200), 0.5)  # unrelated parameters
    for pid in range(300, 310):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, pseudo_metric(params))
        tuner.trial_end(pid, True)


@pytest.mark.parametrize("name", TUNERS)
def test_result_and_end_in_either_order_repeated(name: str) -> None:
    tuner = make(name, QUADRATIC)
    run_sequential(tuner, 21, lambda p: p["x"] ** 2)
    a, b = tuner.generate_parameters(50), tuner.generate_parameters(51)
    tuner.trial_end(50, True)  # end overtakes the result (NNI #5798)
    tuner.receive_trial_result(50, a, 1.0)
    tuner.receive_trial_result(50, a, 1.0)
    tuner.trial_end(50, True)
    tuner.receive_trial_result(51, b, {"default": 2.0, "other": 3})  # result first
    tuner.trial_end(51, True)
    tuner.trial_end(51, False)
    tuner.trial_end(999, False)  # never generated
    tuner.receive_trial_result(998, {"x": 1.5}, 0.1)  # customised / replayed trial
    tuner.receive_trial_result(997, {"x": 55.0}, 0.1)  # not in the space: ignored
    tuner.receive_trial_result(996, {"x": 2.0}, float("nan"))  # ignored
    tuner.generate_parameters(52)


@pytest.mark.parametrize("name", TUNERS)
def test_finite_space_no_duplicates_then_no_more_trials(name: str) -> None:
    tuner = make(name, SMALL_FINITE)
    configs = []
    for pid in range(6):
        params = tuner.generate_parameters(pid)
        configs.append(json.dumps(params, sort_keys=True))
        tuner.receive_trial_result(pid, params, float(pid))
        tuner.trial_end(pid, True)
    assert len(set(configs)) == 6
    with pytest.raises(NoMoreTrials):
        tuner.generate_parameters(6)


@pytest.mark.parametrize("name", TUNERS)
def test_import_data_then_suggest(name: str) -> None:
    tuner = make(name, SMALL_FINITE)
    imported: list[dict[str, Any]] = [
        {"parameter": {"a": 1, "b": "x"}, "value": 0.5},
        {"parameter": {"a": 2, "b": "x"}, "value": {"default": 0.4}},
        {"parameter": {"a": 3, "b": "x"}, "value": '{"default": 0.3}'},
        {"parameter": {"a": 1, "b": "y"}, "value": 0.2},
        {"parameter": {"a": 9, "b": "y"}, "value": 0.1},  # outside the space: skipped
        {"parameter": {"a": 2, "b": "y"}, "value": "not a metric"},  # skipped
    ]
    tuner.import_data(imported)
    fresh = {json.dumps(tuner.generate_parameters(pid), sort_keys=True) for pid in range(2)}
    assert fresh == {json.dumps({"a": 2, "b": "y"}), json.dumps({"a": 3, "b": "y"})}
    with pytest.raises(NoMoreTrials):
        tuner.generate_parameters(2)

    warm = make(name, QUADRATIC)
    warm.import_data([{"parameter": {"x": i - 10.0}, "value": (i - 13) ** 2} for i in range(25)])
    assert -10 <= warm.generate_parameters(0)["x"] <= 10


@pytest.mark.parametrize("name", TUNERS)
@pytest.mark.parametrize("mode", ["minimize", "maximize"])
def test_quadratic_best_found_near_optimum(name: str, mode: str) -> None:
    sign = 1 if mode == "minimize" else -1
    for seed in (1, 2, 3):
        tuner = create_tuner(name, {"seed": seed, "optimize_mode": mode})
        tuner.update_search_space(QUADRATIC)
        history = run_sequential(tuner, 40, lambda p: sign * (p["x"] - 3.0) ** 2)
        best_x = min(history, key=lambda h: sign * h[1])[0]["x"]
        assert abs(best_x - 3.0) < 2.0
        if name == "TPE":
            assert abs(best_x - 3.0) < 0.5


@pytest.mark.parametrize("name", TUNERS)
def test_parallel_suggestions_with_running_trials(name: str) -> None:
    tuner = make(name, NESTED_SPACE)
    run_sequential(tuner, 25, pseudo_metric)
    batch = [tuner.generate_parameters(pid) for pid in range(100, 108)]
    assert len({json.dumps(p, sort_keys=True) for p in batch}) == 8


@pytest.mark.parametrize("name", TUNERS)
def test_search_space_update_keeps_fitting_history(name: str) -> None:
    tuner = make(name, QUADRATIC)
    run_sequential(tuner, 10, lambda p: p["x"] ** 2)
    tuner.update_search_space(
        {**QUADRATIC, "y": {"_type": "choice", "_value": [0, 1]}}  # old results no longer fit
    )
    run_sequential(tuner, 5, lambda p: p["x"] ** 2 + p["y"])


@pytest.mark.parametrize("name", TUNERS)
def test_generate_before_search_space_is_an_error(name: str) -> None:
    with pytest.raises(RuntimeError):
        create_tuner(name, {}).generate_parameters(0)


@pytest.mark.parametrize("name", TUNERS)
@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"optimise_mode": "maximize"}, "tuner.classArgs.optimise_mode"),
        ({"optimize_mode": "max"}, "tuner.classArgs.optimize_mode"),
        ({"seed": -1}, "tuner.classArgs.seed"),
        ({"seed": "7"}, "tuner.classArgs.seed"),
    ],
)
def test_invalid_class_args_name_the_field(name: str, args: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_tuner(name, args)
    assert err.value.field == field


def test_registry_names_aliases_and_did_you_mean() -> None:
    assert {"TPE", "Random", "Anneal"} <= set(TUNERS)
    assert type(create_tuner("RandomSearch", {})) is type(create_tuner("Random", None))
    assert type(create_tuner("tpe", {})) is type(create_tuner("TPE", {}))
    with pytest.raises(ConfigError, match="Did you mean 'Anneal'") as err:
        create_tuner("Aneal", {})
    assert err.value.field == "tuner.name"
    with pytest.raises(ConfigError, match="did you mean 'optimize_mode'"):
        create_tuner("TPE", {"optimise_mode": "minimize"})


@pytest.mark.parametrize(
    "args",
    [
        {"constant_liar_type": "best"},
        {"constant_liar_type": "worst"},
        {"constant_liar_type": "mean"},
        {"constant_liar_type": "max", "parallel_optimize": True},
        {"tpe_args": {"constant_liar_type": None}},
        {
            "tpe_args": {
                "constant_liar_type": "worst",
                "n_startup_jobs": 5,
                "n_ei_candidates": 12,
                "gamma": 0.3,
                "prior_weight": 0.8,
                "linear_forgetting": 25,
            }
        },
    ],
)
def test_tpe_accepts_legacy_and_nni3_arguments(args: dict[str, Any]) -> None:
    tuner = make("TPE", NESTED_SPACE, **args)
    run_sequential(tuner, 8, pseudo_metric)
    batch = {json.dumps(tuner.generate_parameters(p), sort_keys=True) for p in range(50, 54)}
    assert len(batch) == 4


@pytest.mark.parametrize(
    ("tpe_args", "field"),
    [
        ({"n_startup_job": 5}, "tuner.classArgs.tpe_args.n_startup_job"),
        ({"gamma": 1.5}, "tuner.classArgs.tpe_args.gamma"),
        ({"n_ei_candidates": 0}, "tuner.classArgs.tpe_args.n_ei_candidates"),
        ({"linear_forgetting": 30}, "tuner.classArgs.tpe_args.linear_forgetting"),
        ({"constant_liar_type": "median"}, "tuner.classArgs.constant_liar_type"),
        ([1], "tuner.classArgs.tpe_args"),
    ],
)
def test_tpe_rejects_bad_tpe_args(tpe_args: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_tuner("TPE", {"tpe_args": tpe_args})
    assert err.value.field == field


def test_tpe_past_startup_still_avoids_duplicates_on_finite_space() -> None:
    tuner = make("TPE", SMALL_FINITE, tpe_args={"n_startup_jobs": 1})
    configs = [json.dumps(p, sort_keys=True) for p, _ in run_sequential(tuner, 6, lambda p: 0.0)]
    assert len(set(configs)) == 6
