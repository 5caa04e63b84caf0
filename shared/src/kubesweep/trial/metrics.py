"""Checking and normalising the metrics a trial reports.

A metric is a finite number or a dict whose ``default`` key holds one (the number tuners
optimise); the dict's other values are anything JSON can carry. Framework scalars are
accepted by duck typing, so this module needs neither numpy nor torch: objects with an
``.item()`` method (numpy scalars, 0-d arrays, one-element torch tensors — NNI #4166) and
objects that define ``__float__`` (Decimal, Fraction) become plain numbers; arrays with a
``.tolist()`` become lists inside a dict.
"""

from __future__ import annotations

import json
import math
from typing import Any

from . import protocol

_HINT = "a metric must be a finite number or a dict with a numeric 'default' key"


def normalize_metric(metric: Any) -> Any:
    """Return ``metric`` as plain JSON-ready data, or raise TypeError/ValueError saying why not."""
    if isinstance(metric, dict):
        if protocol.DEFAULT_METRIC_KEY not in metric:
            keys = ", ".join(repr(k) for k in list(metric)[:10])
            raise ValueError(f"{_HINT}; the dict has no 'default' key (keys: {keys})")
        out = {}
        for key, value in metric.items():
            if not isinstance(key, str):
                raise TypeError(f"{_HINT}; dict keys must be strings, got {key!r}")
            if key == protocol.DEFAULT_METRIC_KEY:
                out[key] = to_number(value, what="metric['default']")
            else:
                out[key] = _to_json(value, f"metric[{key!r}]")
        return out
    return to_number(metric, what="metric")


def to_number(value: Any, *, what: str = "metric") -> int | float:
    """A finite int or float from ``value``; bools and strings are refused."""
    number = _scalar(value, what)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{_HINT}; {what} is {number!r}, which is not finite")
    return number


def encode_metric(metric: Any) -> str:
    """``metric`` as compact JSON, refused when NNI would refuse its size."""
    text = json.dumps(metric, allow_nan=False, separators=(",", ":"))
    if len(text) >= protocol.MAX_METRIC_CHARS:
        raise ValueError(f"metric is too large: {len(text)} characters of JSON (limit 1,000,000)")
    return text


def _scalar(value: Any, what: str) -> int | float:
    if isinstance(value, bool):
        raise TypeError(f"{_HINT}; {what} is a bool ({value!r}), which is not a metric")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"{_HINT}; {what} is a string ({value!r:.60}); convert it with float()")
    item = getattr(value, "item", None)
    if callable(item):
        try:
            inner = item()
        except (ValueError, RuntimeError, TypeError) as exc:
            raise ValueError(
                f"{_HINT}; {what} is a {type(value).__name__} that is not a single number "
                f"({exc}); report e.g. loss.mean().item()"
            ) from exc
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return inner
        raise TypeError(
            f"{_HINT}; {what}.item() returned {type(inner).__name__} {inner!r:.60}, not a number"
        )
    if hasattr(type(value), "__float__"):
        return float(value)
    raise TypeError(f"{_HINT}; {what} has type {type(value).__name__}")


def _to_json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}; JSON keys are strings")
            out[key] = _to_json(inner, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(inner, f"{where}[{i}]") for i, inner in enumerate(value)]
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, (int, float)):
        return _to_json(tolist(), where)
    try:
        return to_number(value, what=where)
    except TypeError:
        raise TypeError(
            f"{where} has type {type(value).__name__}, which JSON cannot carry; "
            "use numbers, strings, bools, None, lists or dicts"
        ) from None
