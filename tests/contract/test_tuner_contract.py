"""The contract every registered tuner meets, run against each name in `registry.available()`.

Each case is a registered tuner with its default classArgs, plus a few variants with
classArgs that change behaviour (``Hyperband[serial]``). Tuners declare what they
support (`Tuner.supported_types`, ``supports_nested``, ``deterministic``, ``budgeted``);
a test on a space a tuner declares unsupported is skipped, and a separate test checks
that such spaces are refused with `ConfigError`.

Finite spaces: a tuner proposes each configuration at most once and then raises
`NoMoreTrials` (it does not start repeating) — except budgeted tuners, which re-propose
configurations with a larger ``TRIAL_BUDGET`` by design. `NotReady` is allowed only
while some trial is running.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import zlib
from typing import Any

import pytest

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms import (
    TRIAL_BUDGET,
    NoMoreTrials,
    NotReady,
    Tuner,
    available,
    create_tuner,
)
from kubesweep_tuner.algorithms.registry import resolve

TUNERS = available()
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "Hyperband[serial]": ("Hyperband", {"exec_mode": "serial", "R": 9}),
    "Evolution[pop4]": ("Evolution", {"population_size": 4}),
}
CASES = sorted([*TUNERS, *(v for v in VARIANTS if VARIANTS[v][0] in TUNERS)])


def resolve_case(case: str) -> tuple[str, dict[str, Any]]:
    return VARIANTS.get(case, (case, {}))


def cls_of(case: str) -> type[Tuner]:
    return resolve(resolve_case(case)[0])


def accepts(case: str, arg: str) -> bool:
    return arg in inspect.signature(cls_of(case).__init__).parameters


def build(case: str, **class_args: Any) -> Tuner:
    name, base = resolve_case(case)
    return create_tuner(name, {**base, **class_args})


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


FALLBACK_FINITE = {  # 40 configurations, for tuners that support only choice
    "a": {"_type": "choice", "_value": list(range(8))},
    "b": {"_type": "choice", "_value": ["p", "q", "r", "s", "t"]},
}


def is_batch_like(case: str) -> bool:
    cls = cls_of(case)
    return cls.supported_types == frozenset({"choice"}) and not cls.supports_nested


def as_batch(space: dict[str, Any]) -> dict[str, Any]:
    """A flat choice space as Batch's single ``combine_params`` choice of every combination."""
    names = list(space)
    combos = itertools.product(*(space[n]["_value"] for n in names))
    return {
        "combine_params": {
            "_type": "choice",
            "_value": [dict(zip(names, c, strict=True)) for c in combos],
        }
    }


def declared_support(case: str, space: dict[str, Any]) -> bool:
    cls = cls_of(case)
    types: set[str] = set()
    nested = False

    def walk(sub: dict[str, Any]) -> None:
        nonlocal nested
        for key, spec in sub.items():
            if key == "_name":
                continue
            types.add(spec["_type"])
            for option in spec["_value"] if spec["_type"] == "choice" else []:
                if isinstance(option, dict) and "_name" in option:
                    nested = True
                    walk(option)

    walk(space)
    ok_types = cls.supported_types is None or types <= cls.supported_types
    return ok_types and (cls.supports_nested or not nested)


def space_for(case: str, space: dict[str, Any]) -> dict[str, Any]:
    """``space`` in the form ``case`` takes; skips the test if the tuner declares no support."""
    if not declared_support(case, space):
        pytest.skip(f"{case} does not support this search space")
    if is_batch_like(case) and len(space) > 1:
        return as_batch(space)
    return space


def generic_space(case: str) -> dict[str, Any]:
    """The nested space, or a 40-configuration finite one for choice-only tuners."""
    if declared_support(case, NESTED_SPACE):
        return NESTED_SPACE
    return space_for(case, FALLBACK_FINITE)


def make(case: str, space: dict[str, Any], **class_args: Any) -> Tuner:
    args = {"seed": 1234, **class_args} if accepts(case, "seed") else class_args
    tuner = build(case, **args)
    tuner.update_search_space(space_for(case, space))
    return tuner


def strip(case: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters without ``TRIAL_BUDGET``, which must be present iff the tuner is budgeted."""
    if cls_of(case).budgeted:
        budget = params[TRIAL_BUDGET]
        assert type(budget) is int
        assert budget >= 1
        return {k: v for k, v in params.items() if k != TRIAL_BUDGET}
    assert TRIAL_BUDGET not in params
    return params


def is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


def run_sequential(tuner: Tuner, n: int, objective: Any) -> list[tuple[dict[str, Any], float]]:
    """Up to ``n`` trials one at a time; stops early only at `NoMoreTrials`."""
    history = []
    for pid in range(n):
        try:
            params = tuner.generate_parameters(pid)
        except NoMoreTrials:
            break
        value = objective(params)
        tuner.receive_trial_result(pid, params, value)
        tuner.trial_end(pid, True)
        history.append((params, value))
    return history


def generate_until_not_ready(tuner: Tuner, pids: Any) -> list[dict[str, Any]]:
    """Suggestions for ``pids`` while trials stay running; stops at `NotReady`."""
    out = []
    for pid in pids:
        try:
            out.append(tuner.generate_parameters(pid))
        except NotReady:
            break
    return out


def pseudo_metric(params: dict[str, Any]) -> float:
    return (zlib.crc32(json.dumps(params, sort_keys=True).encode()) % 1000) / 1000


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", sorted(SINGLE_TYPE_SPACES))
def test_each_type_alone_yields_valid_plain_values(case: str, kind: str) -> None:
    spec = SINGLE_TYPE_SPACES[kind]
    tuner = make(case, {"p": spec})
    args = spec["_value"]
    finite_size = {"choice": 4, "randint": 7}.get(kind, 30)
    history = run_sequential(tuner, finite_size, pseudo_metric)
    # A grid may exhaust a quantised type early (quniform [0, 10, 2.5] has 5 points).
    assert len(history) == finite_size or (cls_of(case).deterministic and history)
    for raw, _ in history:
        params = strip(case, raw)
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


@pytest.mark.parametrize("case", CASES)
def test_unsupported_spaces_are_refused(case: str) -> None:
    spaces = [{"p": spec} for spec in SINGLE_TYPE_SPACES.values()] + [NESTED_SPACE]
    for space in spaces:
        if not declared_support(case, space):
            with pytest.raises(ConfigError):
                build(case).update_search_space(space)


@pytest.mark.parametrize("case", CASES)
def test_nested_choice_yields_valid_nested_dicts(case: str) -> None:
    tuner = make(case, NESTED_SPACE)
    seen_names = set()
    for raw, _ in run_sequential(tuner, 40, pseudo_metric):
        params = strip(case, raw)
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


@pytest.mark.parametrize("case", CASES)
def test_same_seed_gives_same_suggestions(case: str) -> None:
    space = generic_space(case)
    first = run_sequential(make(case, space), 30, pseudo_metric)
    second = run_sequential(make(case, space), 30, pseudo_metric)
    assert [p for p, _ in first] == [p for p, _ in second]
    if cls_of(case).deterministic:
        assert not accepts(case, "seed")  # a fixed enumeration must not pretend to use one
        return
    other = build(case, seed=99)
    other.update_search_space(space)
    assert [p for p, _ in run_sequential(other, 30, pseudo_metric)] != [p for p, _ in first]


@pytest.mark.parametrize("case", CASES)
def test_failed_trials_without_results_do_not_block(case: str) -> None:
    tuner = make(case, generic_space(case))
    run_sequential(tuner, 22, pseudo_metric)
    pending = generate_until_not_ready(tuner, range(100, 106))
    assert pending
    for pid in range(100, 100 + len(pending)):
        tuner.trial_end(pid, False)
    extra = tuner.generate_parameters(200)
    tuner.receive_trial_result(104, extra, 0.5)  # unrelated parameters
    tuner.trial_end(200, False)
    for pid in range(300, 310):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, pseudo_metric(params))
        tuner.trial_end(pid, True)


@pytest.mark.parametrize("case", CASES)
def test_result_and_end_in_either_order_repeated(case: str) -> None:
    tuner = make(case, QUADRATIC)
    run_sequential(tuner, 21, lambda p: p["x"] ** 2)
    a = tuner.generate_parameters(50)
    b = generate_until_not_ready(tuner, [51])
    tuner.trial_end(50, True)  # end overtakes the result (NNI #5798)
    tuner.receive_trial_result(50, a, 1.0)
    tuner.receive_trial_result(50, a, 1.0)
    tuner.trial_end(50, True)
    if b:
        tuner.receive_trial_result(51, b[0], {"default": 2.0, "other": 3})  # result first
        tuner.trial_end(51, True)
        tuner.trial_end(51, False)
    tuner.trial_end(999, False)  # never generated
    tuner.receive_trial_result(998, {"x": 1.5}, 0.1)  # customised / replayed trial
    tuner.receive_trial_result(997, {"x": 55.0}, 0.1)  # not in the space: ignored
    tuner.receive_trial_result(996, {"x": 2.0}, float("nan"))  # ignored
    tuner.generate_parameters(52)


@pytest.mark.parametrize("case", CASES)
def test_finite_space_no_duplicates_then_no_more_trials(case: str) -> None:
    tuner = make(case, SMALL_FINITE)
    configs = []
    for pid in range(6):
        params = tuner.generate_parameters(pid)
        configs.append(json.dumps(strip(case, params), sort_keys=True))
        tuner.receive_trial_result(pid, params, float(pid))
        tuner.trial_end(pid, True)
    assert len(set(configs)) == 6
    if cls_of(case).budgeted:  # promotions re-propose the best with a larger budget
        promoted = tuner.generate_parameters(6)
        assert json.dumps(strip(case, promoted), sort_keys=True) in configs
        return
    with pytest.raises(NoMoreTrials):
        tuner.generate_parameters(6)


@pytest.mark.parametrize("case", CASES)
def test_import_data_then_suggest(case: str) -> None:
    tuner = make(case, SMALL_FINITE)
    imported: list[dict[str, Any]] = [
        {"parameter": {"a": 1, "b": "x"}, "value": 0.5},
        {"parameter": {"a": 2, "b": "x"}, "value": {"default": 0.4}},
        {"parameter": {"a": 3, "b": "x"}, "value": '{"default": 0.3}'},
        {"parameter": {"a": 1, "b": "y"}, "value": 0.2},
        {"parameter": {"a": 9, "b": "y"}, "value": 0.1},  # outside the space: skipped
        {"parameter": {"a": 2, "b": "y"}, "value": "not a metric"},  # skipped
        "not a record",  # skipped
    ]
    tuner.import_data(imported)  # type: ignore[arg-type]
    if not cls_of(case).budgeted:  # Hyperband ignores imports, as NNI's advisor does
        fresh = {json.dumps(tuner.generate_parameters(pid), sort_keys=True) for pid in range(2)}
        assert fresh == {json.dumps({"a": 2, "b": "y"}), json.dumps({"a": 3, "b": "y"})}
        with pytest.raises(NoMoreTrials):
            tuner.generate_parameters(2)

    if declared_support(case, QUADRATIC):
        warm = make(case, QUADRATIC)
        warm.import_data(
            [{"parameter": {"x": i - 10.0}, "value": (i - 13) ** 2} for i in range(25)]
        )
        assert -10 <= warm.generate_parameters(0)["x"] <= 10


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["minimize", "maximize"])
def test_quadratic_best_found_near_optimum(case: str, mode: str) -> None:
    space_for(case, QUADRATIC)
    sign = 1 if mode == "minimize" else -1
    for seed in (1, 2, 3):
        args: dict[str, Any] = {"optimize_mode": mode} if accepts(case, "optimize_mode") else {}
        if accepts(case, "seed"):
            args["seed"] = seed
        tuner = build(case, **args)
        tuner.update_search_space(QUADRATIC)
        history = run_sequential(tuner, 40, lambda p: sign * (p["x"] - 3.0) ** 2)
        best_x = min(history, key=lambda h: sign * h[1])[0]["x"]
        assert abs(best_x - 3.0) < 2.0
        if case == "TPE":
            assert abs(best_x - 3.0) < 0.5


@pytest.mark.parametrize("case", CASES)
def test_parallel_suggestions_with_running_trials(case: str) -> None:
    tuner = make(case, generic_space(case))
    run_sequential(tuner, 25, pseudo_metric)
    batch = generate_until_not_ready(tuner, range(100, 108))
    assert batch
    assert len({json.dumps(p, sort_keys=True) for p in batch}) == len(batch)
    if not cls_of(case).budgeted:
        assert len(batch) == 8


@pytest.mark.parametrize("case", CASES)
def test_not_ready_only_while_trials_run(case: str) -> None:
    tuner = make(case, generic_space(case))
    running: list[tuple[int, dict[str, Any]]] = []
    for pid in range(80):
        try:
            running.append((pid, tuner.generate_parameters(pid)))
        except NotReady:
            assert running, "NotReady with no trial running would stall the experiment"
        except NoMoreTrials:
            break
        if len(running) >= 4 or pid % 5 == 0:  # concurrency 4, sometimes draining
            done, params = running.pop(0)
            tuner.receive_trial_result(done, params, pseudo_metric(params))
            tuner.trial_end(done, True)


@pytest.mark.parametrize("case", CASES)
def test_search_space_update_keeps_fitting_history(case: str) -> None:
    tuner = make(case, QUADRATIC)
    run_sequential(tuner, 10, lambda p: p["x"] ** 2)
    tuner.update_search_space(
        {**QUADRATIC, "y": {"_type": "choice", "_value": [0, 1]}}  # old results no longer fit
    )
    run_sequential(tuner, 5, lambda p: p["x"] ** 2 + p["y"])


@pytest.mark.parametrize("case", CASES)
def test_generate_before_search_space_is_an_error(case: str) -> None:
    with pytest.raises(RuntimeError):
        build(case).generate_parameters(0)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"optimise_mode": "maximize"}, "tuner.classArgs.optimise_mode"),
        ({"optimize_mode": "max"}, "tuner.classArgs.optimize_mode"),
        ({"seed": -1}, "tuner.classArgs.seed"),
        ({"seed": "7"}, "tuner.classArgs.seed"),
    ],
)
def test_invalid_class_args_name_the_field(case: str, args: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(case, **args)
    assert err.value.field == field


def test_registry_names_aliases_and_did_you_mean() -> None:
    expected = {
        "TPE",
        "TPE_legacy",
        "Random",
        "Anneal",
        "GridSearch",
        "Batch",
        "Evolution",
        "Hyperband",
        "OptunaTPE",
        "CMAES",
        "NSGAII",
    }
    assert expected <= set(TUNERS)
    assert type(create_tuner("NSGA-II", {})) is type(create_tuner("nsgaii", {}))
    assert type(create_tuner("RandomSearch", {})) is type(create_tuner("Random", None))
    assert type(create_tuner("tpe", {})) is type(create_tuner("TPE", {}))
    assert type(create_tuner("tpe_legacy", {})) is not type(create_tuner("TPE", {}))
    with pytest.raises(ConfigError, match="Did you mean 'Anneal'") as err:
        create_tuner("Aneal", {})
    assert err.value.field == "tuner.name"
    with pytest.raises(ConfigError, match="did you mean 'optimize_mode'"):
        create_tuner("TPE", {"optimise_mode": "minimize"})


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("TPE", {}),
        ("TPE", {"tpe_args": {"constant_liar_type": "worst"}}),
        ("TPE", {"tpe_args": {"constant_liar_type": "mean"}}),
        ("TPE", {"tpe_args": {"constant_liar_type": None}}),
        (
            "TPE",
            {
                "tpe_args": {
                    "constant_liar_type": "best",
                    "n_startup_jobs": 5,
                    "n_ei_candidates": 12,
                    "gamma": 0.3,
                    "prior_weight": 0.8,
                    "linear_forgetting": 100,
                }
            },
        ),
        ("TPE_legacy", {"constant_liar_type": "min"}),
        ("TPE_legacy", {"constant_liar_type": "mean", "parallel_optimize": True}),
        ("TPE_legacy", {"constant_liar_type": "max", "parallel_optimize": False}),
    ],
)
def test_tpe_accepts_nni3_and_legacy_arguments(name: str, args: dict[str, Any]) -> None:
    tuner = make(name, NESTED_SPACE, **args)
    run_sequential(tuner, 8, pseudo_metric)
    batch = {json.dumps(tuner.generate_parameters(p), sort_keys=True) for p in range(50, 54)}
    assert len(batch) == 4


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("TPE", {"tpe_args": {"n_startup_job": 5}}, "tuner.classArgs.tpe_args.n_startup_job"),
        ("TPE", {"tpe_args": {"gamma": 1.5}}, "tuner.classArgs.tpe_args.gamma"),
        ("TPE", {"tpe_args": {"n_ei_candidates": 0}}, "tuner.classArgs.tpe_args.n_ei_candidates"),
        (
            "TPE",
            {"tpe_args": {"linear_forgetting": 0}},
            "tuner.classArgs.tpe_args.linear_forgetting",
        ),
        ("TPE", {"tpe_args": {"prior_weight": -1}}, "tuner.classArgs.tpe_args.prior_weight"),
        (
            "TPE",
            {"tpe_args": {"constant_liar_type": "median"}},
            "tuner.classArgs.tpe_args.constant_liar_type",
        ),
        ("TPE", {"tpe_args": [1]}, "tuner.classArgs.tpe_args"),
        # NNI 3.0's TPE takes only optimize_mode, seed and tpe_args.
        ("TPE", {"parallel_optimize": True}, "tuner.classArgs.parallel_optimize"),
        ("TPE", {"constant_liar_type": "min"}, "tuner.classArgs.constant_liar_type"),
        # TPE_legacy (NNI's HyperoptTuner) has no tpe_args.
        ("TPE_legacy", {"tpe_args": {}}, "tuner.classArgs.tpe_args"),
        ("TPE_legacy", {"constant_liar_type": "median"}, "tuner.classArgs.constant_liar_type"),
        ("TPE_legacy", {"parallel_optimize": "yes"}, "tuner.classArgs.parallel_optimize"),
    ],
)
def test_tpe_rejects_bad_class_args(name: str, args: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_tuner(name, args)
    assert err.value.field == field


@pytest.mark.parametrize("name", ["TPE", "TPE_legacy"])
def test_tpe_past_startup_still_avoids_duplicates_on_finite_space(name: str) -> None:
    args = {"tpe_args": {"n_startup_jobs": 1}} if name == "TPE" else {}
    tuner = make(name, SMALL_FINITE, **args)
    configs = [json.dumps(p, sort_keys=True) for p, _ in run_sequential(tuner, 6, lambda p: 0.0)]
    assert len(set(configs)) == 6
