"""Property tests of the search-space parser: any JSON is either accepted unchanged or
refused with a ConfigError naming the offending entry; every accepted space is one the
tuners can sample from, within its bounds."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesweep.errors import ConfigError
from kubesweep.searchspace import SEARCH_SPACE_TYPES, validate_search_space
from kubesweep_tuner.algorithms.base import NoMoreTrials
from kubesweep_tuner.algorithms.registry import create_tuner

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=10)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def numeric_parameter(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([t for t in SEARCH_SPACE_TYPES if t != "choice"]))
    if kind == "randint":
        low = draw(st.integers(-1000, 1000))
        return {"_type": kind, "_value": [low, low + draw(st.integers(1, 1000))]}
    if kind in ("lognormal", "qlognormal"):
        values = [draw(st.floats(-100, 100)), draw(st.floats(1e-3, 50))]
    elif kind in ("normal", "qnormal"):
        values = [draw(finite), draw(positive)]
    else:
        low = draw(positive if kind.startswith(("log", "qlog")) else finite)
        values = [low, low + draw(positive)]
    if kind.startswith("q"):
        values.append(draw(positive))
    return {"_type": kind, "_value": values}


def choice_parameter(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    plain = st.lists(st.integers() | st.text(max_size=5) | finite, min_size=1, max_size=5)
    if depth == 0:
        options = plain
    else:
        sub = st.builds(
            lambda name, space: {"_name": name, **space},
            st.text(min_size=1, max_size=5),
            spaces(depth - 1),
        )
        options = plain | st.lists(sub, min_size=1, max_size=3)
    return st.builds(lambda v: {"_type": "choice", "_value": v}, options)


def spaces(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        names.filter(lambda n: n != "_name"),
        numeric_parameter() | choice_parameter(depth),
        min_size=1,
        max_size=4,
    )


def _outcome(raw: Any) -> Any:
    """The validated space, or the ConfigError; any other exception fails the test."""
    try:
        return validate_search_space(raw)
    except ConfigError as exc:
        return exc


@FUZZ
@given(json_values)
def test_any_json_is_accepted_unchanged_or_refused_with_a_field(raw: Any) -> None:
    before = json.dumps(raw, sort_keys=True, default=str)
    outcome = _outcome(raw)
    if isinstance(outcome, ConfigError):
        assert outcome.field, outcome
        assert outcome.field.startswith("searchSpace"), outcome
        assert outcome.reason.strip()
        return
    assert outcome is raw
    assert json.dumps(outcome, sort_keys=True, default=str) == before


@FUZZ
@given(spaces())
def test_valid_spaces_are_accepted_and_survive_a_json_round_trip(space: dict[str, Any]) -> None:
    assert validate_search_space(space) == space
    again = json.loads(json.dumps(space))
    assert validate_search_space(again) == space


@FUZZ
@given(spaces(depth=1), st.data())
def test_a_broken_parameter_is_named_in_the_error(
    space: dict[str, Any], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(space)))
    broken = dict(space)
    damage = data.draw(st.sampled_from(["no-type", "no-value", "bad-type", "value-not-list"]))
    spec = dict(space[name])
    if damage == "no-type":
        del spec["_type"]
    elif damage == "no-value":
        del spec["_value"]
    elif damage == "bad-type":
        spec["_type"] = spec["_type"] + "x"
    else:
        spec["_value"] = data.draw(json_scalars)
    broken[name] = spec
    with pytest.raises(ConfigError) as info:
        validate_search_space(broken)
    assert info.value.field is not None
    assert info.value.field.startswith(f"searchSpace.{name}"), (info.value.field, name, damage)


def test_bounds_that_overflow_a_float_are_refused() -> None:
    for spec in (
        {"_type": "lognormal", "_value": [0, 504]},
        {"_type": "qlognormal", "_value": [690, 2, 1]},
        {"_type": "uniform", "_value": [-1e308, 1e308]},
        {"_type": "normal", "_value": [1e308, 1e308]},
    ):
        with pytest.raises(ConfigError, match="float") as info:
            validate_search_space({"x": spec})
        assert info.value.field == "searchSpace.x._value"


def test_nesting_is_bounded() -> None:
    space: dict[str, Any] = {"x": {"_type": "uniform", "_value": [0, 1]}}
    for level in range(40):
        space = {f"p{level}": {"_type": "choice", "_value": [{"_name": "n", **space}]}}
    with pytest.raises(ConfigError, match="deeper than") as info:
        validate_search_space(space)
    assert info.value.field


def _within(value: Any, spec: dict[str, Any]) -> bool:
    kind, bounds = spec["_type"], spec["_value"]
    if kind == "choice":
        plain = [o for o in bounds if not isinstance(o, dict)]
        named = [o for o in bounds if isinstance(o, dict)]
        if isinstance(value, dict) and "_name" in value:
            return any(o["_name"] == value["_name"] for o in named)
        return value in plain
    if not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if kind in ("uniform", "quniform", "loguniform", "qloguniform", "randint"):
        low, high = bounds[0], bounds[1]
        slack = bounds[2] if kind.startswith("q") else 1e-9 * max(1.0, abs(high))
        return low - slack <= value <= high + slack
    return True  # normal distributions are unbounded


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spaces(depth=1), st.sampled_from(["Random", "TPE", "Anneal", "Evolution"]))
def test_tuners_sample_every_accepted_space_within_bounds(
    space: dict[str, Any], tuner_name: str
) -> None:
    validate_search_space(space)
    tuner = create_tuner(
        tuner_name, {"optimize_mode": "maximize"} if tuner_name != "Random" else {}
    )
    tuner.update_search_space(space)
    for parameter_id in range(3):
        try:
            params = tuner.generate_parameters(parameter_id)
        except NoMoreTrials:
            return  # a finite space (e.g. one choice) is used up: the tuner says so
        assert set(params) == set(space)
        for name, spec in space.items():
            assert _within(params[name], spec), (tuner_name, name, spec, params[name])
