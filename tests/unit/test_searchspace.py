"""NNI search-space validation: every _type, nesting, files, and error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesweep.errors import ConfigError
from kubesweep.searchspace import (
    SEARCH_SPACE_TYPES,
    load_search_space_file,
    validate_search_space,
)

VALID: dict[str, list[Any]] = {
    "choice": [16, "relu", 0.5, True],
    "randint": [1, 10],
    "uniform": [0, 1.5],
    "quniform": [0, 10, 2],
    "loguniform": [0.0001, 0.1],
    "qloguniform": [1, 1000, 1],
    "normal": [-1, 0.5],
    "qnormal": [0, 2, 0.5],
    "lognormal": [-3, 1],
    "qlognormal": [0, 1, 1],
}


def _error(space: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_search_space(space)
    return info.value


def test_valid_covers_every_type() -> None:
    assert set(VALID) == set(SEARCH_SPACE_TYPES)


@pytest.mark.parametrize(("type_", "value"), VALID.items())
def test_every_type_accepts_a_valid_value(type_: str, value: list[Any]) -> None:
    space = {"p": {"_type": type_, "_value": value}}
    assert validate_search_space(space) is space


@pytest.mark.parametrize(
    ("type_", "value", "fragment"),
    [
        ("choice", [], "at least one option"),
        ("choice", [[1, 2]], "numbers, strings, booleans or dicts"),
        ("choice", [None], "numbers, strings, booleans or dicts"),
        ("choice", [{"units": {"_type": "choice", "_value": [1]}}], "needs a _name"),
        ("randint", [1.5, 10], "must be integers"),
        ("randint", [5, 5], "lower < upper"),
        ("randint", [1, 2, 3], "needs [lower, upper]"),
        ("uniform", [1, 0], "low < high"),
        ("uniform", [0], "needs [low, high]"),
        ("uniform", [0, "1"], "finite numbers"),
        ("uniform", [0, True], "finite numbers"),
        ("uniform", [0, float("inf")], "finite numbers"),
        ("quniform", [0, 10], "needs [low, high, q]"),
        ("quniform", [0, 10, 0], "q > 0"),
        ("quniform", [10, 0, 1], "low < high"),
        ("loguniform", [0, 1], "low > 0"),
        ("loguniform", [0.1, 0.01], "low < high"),
        ("qloguniform", [-1, 10, 1], "low > 0"),
        ("qloguniform", [1, 10, -1], "q > 0"),
        ("normal", [0, 0], "sigma > 0"),
        ("normal", [0, 1, 1], "needs [mu, sigma]"),
        ("qnormal", [0, -1, 1], "sigma > 0"),
        ("qnormal", [0, 1, 0], "q > 0"),
        ("lognormal", [0, -2], "sigma > 0"),
        ("qlognormal", [0, 1], "needs [mu, sigma, q]"),
    ],
)
def test_invalid_values_name_the_path_and_the_rule(
    type_: str, value: list[Any], fragment: str
) -> None:
    err = _error({"lr": {"_type": type_, "_value": value}})
    assert err.field is not None
    assert err.field.startswith("searchSpace.lr._value")
    assert fragment in str(err)


def test_loguniform_message_says_how_to_fix() -> None:
    err = _error({"lr": {"_type": "loguniform", "_value": [0, 1]}})
    assert err.field == "searchSpace.lr._value"
    assert "loguniform needs low > 0, got [0, 1]; use a positive lower bound" in str(err)


def test_value_must_be_a_list() -> None:
    err = _error({"lr": {"_type": "uniform", "_value": "0,1"}})
    assert err.field == "searchSpace.lr._value"
    assert "must be a list" in str(err)


def test_missing_value_and_type() -> None:
    assert _error({"lr": {"_type": "uniform"}}).field == "searchSpace.lr._value"
    assert _error({"lr": {"_value": [0, 1]}}).field == "searchSpace.lr._type"


def test_unknown_type_suggests_the_closest() -> None:
    err = _error({"lr": {"_type": "log_uniform", "_value": [0.1, 1]}})
    assert err.field == "searchSpace.lr._type"
    assert "did you mean 'loguniform'?" in str(err)


def test_unknown_key_in_a_parameter_suggests_the_closest() -> None:
    err = _error({"lr": {"_type": "uniform", "_values": [0, 1]}})
    assert "did you mean '_value'?" in str(err)


@pytest.mark.parametrize("space", [{}, [], "x", None])
def test_empty_or_non_object_search_space_is_refused(space: object) -> None:
    err = _error(space)
    assert err.field == "searchSpace"


def test_non_dict_entry_is_refused() -> None:
    err = _error({"lr": [0, 1]})
    assert err.field == "searchSpace.lr"
    assert '"_type"' in str(err)


def test_a_bare_parameter_spec_is_explained() -> None:
    err = _error({"_type": "uniform", "_value": [0, 1]})
    assert "without a name" in str(err)


def test_nested_choice_is_validated_recursively() -> None:
    space: dict[str, Any] = {
        "layer": {
            "_type": "choice",
            "_value": [
                {"_name": "empty"},
                {
                    "_name": "conv",
                    "kernel": {"_type": "choice", "_value": [3, 5]},
                    "dropout": {"_type": "uniform", "_value": [0, 0.5]},
                },
            ],
        }
    }
    assert validate_search_space(space) is space
    space["layer"]["_value"][1]["dropout"]["_value"] = [0.5, 0]
    err = _error(space)
    assert err.field == "searchSpace.layer._value[1].dropout._value"
    assert "low < high" in str(err)


def test_custom_field_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        validate_search_space({"x": {"_type": "uniform", "_value": [1, 0]}}, field="space")
    assert info.value.field == "space.x._value"


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "search_space.json"
    space = {"lr": {"_type": "loguniform", "_value": [0.001, 0.1]}}
    path.write_text(json.dumps(space))
    assert load_search_space_file(path) == space


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_search_space_file(tmp_path / "nope.json")
    assert info.value.field == "searchSpaceFile"
    assert "does not exist" in str(info.value)


def test_load_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "search_space.json"
    path.write_text('{\n  "lr": {"_type": "uniform", "_value": [0, 1]},\n}\n')
    with pytest.raises(ConfigError) as info:
        load_search_space_file(path)
    assert info.value.line == 3
    assert "line 3 column 1" in str(info.value)
    assert "trailing commas" in str(info.value)


def test_load_file_content_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "search_space.json"
    path.write_text(json.dumps({"lr": {"_type": "normal", "_value": [0, 0]}}))
    with pytest.raises(ConfigError) as info:
        load_search_space_file(path)
    assert info.value.field == "searchSpace.lr._value"
