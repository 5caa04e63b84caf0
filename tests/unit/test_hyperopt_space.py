"""NNI search space ↔ hyperopt conversion details (`HyperoptSpace`)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hyperopt import Domain, Trials, rand

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.hyperopt_space import HyperoptSpace

NESTED: dict[str, Any] = {
    "model": {
        "_type": "choice",
        "_value": [
            {"_name": "svm", "C": {"_type": "choice", "_value": [0.1, 1, 10]}},
            {"_name": "tree", "C": {"_type": "randint", "_value": [2, 5]}},
            "knn",
        ],
    },
    "bs": {"_type": "randint", "_value": [16, 18]},
}


def sample(space: HyperoptSpace, n: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    domain = Domain(lambda _: 0.0, space.expr)
    out = []
    for i in range(n):
        misc = rand.suggest([i], domain, Trials(), seed + i)[0]["misc"]
        out.append({k: v[0] for k, v in misc["vals"].items() if v})
    return out


def test_labels_are_unique_for_repeated_sub_parameter_names() -> None:
    domain = Domain(lambda _: 0.0, HyperoptSpace(NESTED).expr)
    assert len(domain.params) == 4  # model, svm's C, tree's C, bs


def test_randint_is_offset_and_returned_as_int() -> None:
    space = HyperoptSpace({"r": {"_type": "randint", "_value": [-2, 3]}})
    assert space.to_params({"root[r]": np.int64(0)}) == {"r": -2}
    values = {space.to_params(v)["r"] for v in sample(space)}
    assert values == {-2, -1, 0, 1, 2}
    assert all(type(v) is int for v in values)
    assert space.to_vals({"r": 2}) == {"root[r]": 4}
    assert space.to_vals({"r": 2.0}) == {"root[r]": 4}


def test_choice_returns_the_option_values_not_indices() -> None:
    space = HyperoptSpace({"c": {"_type": "choice", "_value": ["relu", 3, 0.5, True]}})
    assert [space.to_params({"root[c]": np.int64(i)})["c"] for i in range(4)] == [
        "relu",
        3,
        0.5,
        True,
    ]
    assert space.to_vals({"c": True}) == {"root[c]": 3}
    assert space.to_vals({"c": 3.0}) == {"root[c]": 1}  # numbers compare by value
    with pytest.raises(ValueError, match="not an option"):
        space.to_vals({"c": "tanh"})


def test_nested_choice_round_trip_and_inactive_labels() -> None:
    space = HyperoptSpace(NESTED)
    params = {"model": {"_name": "tree", "C": 4}, "bs": 17}
    vals = space.to_vals(params)
    assert vals == {"root[model]": 1, "root[model][1][C]": 2, "root[bs]": 1}
    assert space.to_params(vals) == params
    assert space.to_params({"root[model]": 2, "root[bs]": 0}) == {"model": "knn", "bs": 16}
    for raw in sample(space):
        params = space.to_params(raw)
        assert space.to_vals(params) == raw
        json.dumps(params)


@pytest.mark.parametrize(
    "bad",
    [
        {"model": {"_name": "forest"}, "bs": 16},
        {"model": {"_name": "tree", "C": 9}, "bs": 16},
        {"model": {"_name": "tree"}, "bs": 16},
        {"model": "knn", "bs": 18},
        {"model": "knn", "bs": 16.5},
        {"model": "knn"},
        {"model": "knn", "bs": True},
    ],
)
def test_parameters_outside_the_space_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by cause
        HyperoptSpace(NESTED).to_vals(bad)


def test_quantised_values_are_clipped_to_the_bounds() -> None:
    space = HyperoptSpace(
        {
            "q": {"_type": "quniform", "_value": [1, 10, 4]},
            "ql": {"_type": "qloguniform", "_value": [3, 100, 10]},
        }
    )
    assert space.to_params({"root[q]": 0.0, "root[ql]": 0.0}) == {"q": 1.0, "ql": 3.0}
    assert space.to_params({"root[q]": 12.0, "root[ql]": 110.0}) == {"q": 10.0, "ql": 100.0}
    for raw in sample(space):
        p = space.to_params(raw)
        assert 1 <= p["q"] <= 10
        assert 3 <= p["ql"] <= 100
        assert type(p["q"]) is float


def test_log_types_use_log_transformed_bounds() -> None:
    space = HyperoptSpace({"lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]}})
    values = [space.to_params(v)["lr"] for v in sample(space, 400)]
    assert all(1e-5 <= v <= 1e-1 for v in values)
    # log-uniform: about a quarter of the mass in each decade
    below_1e4 = sum(v < 1e-4 for v in values) / len(values)
    assert 0.15 < below_1e4 < 0.35


def test_normal_types_are_unbounded_floats() -> None:
    space = HyperoptSpace(
        {
            "n": {"_type": "normal", "_value": [0, 1]},
            "qn": {"_type": "qnormal", "_value": [0, 5, 2]},
            "ln": {"_type": "lognormal", "_value": [0, 1]},
            "qln": {"_type": "qlognormal", "_value": [0, 1, 0.5]},
        }
    )
    for raw in sample(space):
        p = space.to_params(raw)
        assert all(type(v) is float and math.isfinite(v) for v in p.values())
        assert math.isclose(p["qn"] / 2, round(p["qn"] / 2))
        assert p["ln"] > 0
        assert p["qln"] >= 0
    with pytest.raises(ValueError, match="support"):
        space.to_vals({"n": 0.0, "qn": 0.0, "ln": -1.0, "qln": 0.0})


def test_size_and_enumeration_of_finite_spaces() -> None:
    space = HyperoptSpace(NESTED)
    assert space.size == (3 + 3 + 1) * 2
    configs = [json.dumps(space.to_params(v), sort_keys=True) for v in space.enumerate_vals()]
    assert len(configs) == len(set(configs)) == 14
    infinite = HyperoptSpace({**NESTED, "x": {"_type": "uniform", "_value": [0, 1]}})
    assert infinite.size is None
    with pytest.raises(ValueError, match="not finite"):
        infinite.enumerate_vals()


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({"a": {"_type": "gaussian", "_value": [0, 1]}}, "searchSpace.a"),
        ({"a": {"_type": "uniform", "_value": [1]}}, "searchSpace.a"),
        ({"a": {"_type": "uniform", "_value": [2, 1]}}, "searchSpace.a"),
        ({"a": {"_type": "loguniform", "_value": [0, 1]}}, "searchSpace.a"),
        ({"a": {"_type": "choice", "_value": []}}, "searchSpace.a"),
        ({"a": {"_type": "choice", "_value": [{"b": 1}]}}, "searchSpace.a"),
        (
            {
                "a": {
                    "_type": "choice",
                    "_value": [{"_name": "n", "b": {"_type": "quniform", "_value": [0, 1]}}],
                }
            },
            "searchSpace.a[0].b",
        ),
    ],
)
def test_malformed_spaces_name_the_parameter(space: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        HyperoptSpace(space)
    assert err.value.field == field
