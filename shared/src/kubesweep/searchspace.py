"""NNI search-space validation (the rules of ``nni/common/hpo_utils/validation.py``).

A search space is a JSON object mapping parameter names to ``{"_type": T, "_value": [...]}``.
``choice`` options may be dicts carrying ``_name``; their other keys form a nested sub-space.
Errors name the exact path (``searchSpace.lr._value``) and say how to fix the entry.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

from kubesweep.errors import ConfigError

__all__ = ["SEARCH_SPACE_TYPES", "load_search_space_file", "validate_search_space"]

_TWO_NUMBER_TYPES = ("uniform", "loguniform", "normal", "lognormal")
_Q_TYPES = ("quniform", "qloguniform", "qnormal", "qlognormal")
_NORMAL_TYPES = ("normal", "qnormal", "lognormal", "qlognormal")
_LOG_BOUNDED_TYPES = ("loguniform", "qloguniform")

SEARCH_SPACE_TYPES: tuple[str, ...] = ("choice", "randint", *_TWO_NUMBER_TYPES, *_Q_TYPES)
"""Every ``_type`` NNI defines."""

_EXAMPLE = '{"lr": {"_type": "loguniform", "_value": [0.0001, 0.1]}}'
# Nested choices (sub-spaces) inside nested choices; every consumer recurses per level.
MAX_NESTING = 16


def validate_search_space(raw: object, *, field: str = "searchSpace") -> dict[str, Any]:
    """Check ``raw`` against NNI's search-space rules and return it unchanged.

    Raises ``ConfigError`` whose ``field`` is the dotted path of the offending entry.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"must be a JSON object mapping parameter names to specs, got {_kind(raw)}; "
            f"e.g. {_EXAMPLE}",
            field=field,
        )
    if not raw:
        raise ConfigError(f"is empty; define at least one parameter, e.g. {_EXAMPLE}", field=field)
    if "_type" in raw or "_value" in raw:
        raise ConfigError(
            "looks like a single parameter spec without a name; wrap it in a name, "
            f"e.g. {_EXAMPLE}",
            field=field,
        )
    _validate_space(raw, field)
    return raw


def load_search_space_file(path: Path, *, field: str = "searchSpaceFile") -> dict[str, Any]:
    """Read a JSON search-space file and validate it.

    Missing files and JSON syntax errors raise ``ConfigError`` naming ``field`` (and, for
    syntax errors, the line and column in the file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"search space file {str(path)!r} does not exist; check the path (relative paths "
            "are relative to the config file's folder)",
            field=field,
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read search space file {str(path)!r}: {exc}", field=field
        ) from exc
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{path.name} is nested too deeply to parse", field=field) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
            "check for trailing commas, single quotes or comments (JSON allows none of them)",
            field=field,
            line=exc.lineno,
        ) from exc
    return validate_search_space(data)


def _validate_space(space: dict[Any, Any], path: str, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        raise ConfigError(
            f"nested choices go deeper than {MAX_NESTING} levels; flatten the search space",
            field=path,
        )
    for name, spec in space.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"parameter names must be non-empty strings, got {name!r}", field=path
            )
        _validate_parameter(spec, f"{path}.{name}", depth)


def _validate_parameter(spec: object, path: str, depth: int = 0) -> None:
    if not isinstance(spec, dict):
        raise ConfigError(
            f'must be an object like {{"_type": "uniform", "_value": [0, 1]}}, got {_kind(spec)}',
            field=path,
        )
    for key in spec:
        if key not in ("_type", "_value"):
            raise ConfigError(
                f"unknown key {key!r}{_did_you_mean(str(key), ('_type', '_value'))}; "
                "a parameter has only _type and _value",
                field=path,
            )
    if "_type" not in spec:
        raise ConfigError(
            f"missing _type; use one of {', '.join(SEARCH_SPACE_TYPES)}", field=f"{path}._type"
        )
    type_ = spec["_type"]
    if type_ not in SEARCH_SPACE_TYPES:
        raise ConfigError(
            f"unknown _type {type_!r}{_did_you_mean(str(type_), SEARCH_SPACE_TYPES)}; "
            f"valid types: {', '.join(SEARCH_SPACE_TYPES)}",
            field=f"{path}._type",
        )
    value_path = f"{path}._value"
    if "_value" not in spec:
        raise ConfigError(f"missing _value; {type_} needs {_shape(type_)}", field=value_path)
    values = spec["_value"]
    if not isinstance(values, list):
        raise ConfigError(
            f"must be a list, got {_kind(values)}; {type_} needs {_shape(type_)}",
            field=value_path,
        )
    if type_ == "choice":
        _validate_choice(values, value_path, depth)
    else:
        _validate_numeric(type_, values, value_path)


def _validate_choice(options: list[Any], path: str, depth: int = 0) -> None:
    if not options:
        raise ConfigError("choice needs at least one option, got []", field=path)
    for index, option in enumerate(options):
        where = f"{path}[{index}]"
        if isinstance(option, dict):
            if "_name" not in option:
                raise ConfigError(
                    "a dict option is a nested sub-space and needs a _name key, e.g. "
                    '{"_name": "conv", "kernel": {"_type": "choice", "_value": [3, 5]}}',
                    field=where,
                )
            name = option["_name"]
            if isinstance(name, bool) or not isinstance(name, str | int | float):
                raise ConfigError(
                    f"_name must be a string or number, got {_kind(name)}", field=f"{where}._name"
                )
            _validate_space({k: v for k, v in option.items() if k != "_name"}, where, depth + 1)
        elif isinstance(option, float) and not math.isfinite(option):
            raise ConfigError(f"options must be finite numbers, got {option}", field=where)
        elif not isinstance(option, str | int | float | bool):
            raise ConfigError(
                "options must be numbers, strings, booleans or dicts with _name, "
                f"got {_kind(option)}",
                field=where,
            )


def _validate_numeric(type_: str, values: list[Any], path: str) -> None:
    expected = 3 if type_ in _Q_TYPES else 2
    if len(values) != expected:
        raise ConfigError(
            f"{type_} needs {_shape(type_)}, got {len(values)} value(s) {values}", field=path
        )
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(
                f"{type_} values must be finite numbers, got {value!r} in {values}", field=path
            )
    first, second = values[0], values[1]
    if type_ == "randint":
        if not all(isinstance(v, int) for v in values):
            raise ConfigError(
                f"randint bounds must be integers, got {values}; e.g. [1, 10]", field=path
            )
        if first >= second:
            raise ConfigError(
                f"randint needs lower < upper (upper is exclusive), got {values}; "
                f"e.g. [{first}, {first + 1}]",
                field=path,
            )
    elif type_ in _NORMAL_TYPES:
        if second <= 0:
            raise ConfigError(
                f"{type_} needs sigma > 0, got {values}; the second value is the standard "
                "deviation and must be positive",
                field=path,
            )
    elif first >= second:
        raise ConfigError(
            f"{type_} needs low < high, got {values}; put the smaller bound first", field=path
        )
    if type_ in _LOG_BOUNDED_TYPES and first <= 0:
        raise ConfigError(
            f"{type_} needs low > 0, got {values}; use a positive lower bound", field=path
        )
    if type_ in _Q_TYPES and values[2] <= 0:
        raise ConfigError(
            f"{type_} needs q > 0, got {values}; q is the rounding step, e.g. 1 or 0.5",
            field=path,
        )
    _check_range(type_, values, path)


# exp(709.78) is the largest float; sampling farther than ten sigma is practically never.
_MAX_EXPONENT = 700.0


def _check_range(type_: str, values: list[Any], path: str) -> None:
    """Refuse bounds whose samples overflow a float (a tuner crashed on them)."""
    first, second = float(values[0]), float(values[1])
    if type_ in ("lognormal", "qlognormal"):
        if abs(first) + 10 * second > _MAX_EXPONENT:
            raise ConfigError(
                f"{type_} {values} gives values beyond a float's range (exp(mu + 10 sigma) "
                f"overflows); keep |mu| + 10 * sigma below {_MAX_EXPONENT:.0f}",
                field=path,
            )
        return
    spread = second - first if type_ not in _NORMAL_TYPES else abs(first) + 10 * second
    if not math.isfinite(spread):
        raise ConfigError(
            f"{type_} {values} spans more than a float can hold; use smaller bounds", field=path
        )


def _shape(type_: str) -> str:
    if type_ == "choice":
        return "a non-empty list of options"
    if type_ == "randint":
        return "[lower, upper] integers"
    if type_ in _NORMAL_TYPES:
        return "[mu, sigma, q]" if type_ in _Q_TYPES else "[mu, sigma]"
    return "[low, high, q]" if type_ in _Q_TYPES else "[low, high]"


def _did_you_mean(word: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bool):
        return f"a boolean {str(value).lower()}"
    if isinstance(value, list):
        return f"a list {value!r}"
    if isinstance(value, str):
        return f"a string {value!r}"
    return f"{type(value).__name__} {value!r}"
