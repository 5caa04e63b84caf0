"""Conversion between NNI search spaces / parameters and hyperopt expressions / ``vals``.

hyperopt records a suggestion as ``vals``: label → raw value, where a choice is an
option index and ``randint`` is offset to start at 0 (NNI's encoding, so TPE treats
it as unordered). `HyperoptSpace` builds the hyperopt expression for a space and maps
``vals`` to NNI parameters and back, so suggestions can be returned and results of
any origin (generated, imported, customised) can be fed to hyperopt.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hyperopt import hp

from kubesweep.errors import ConfigError

__all__ = ["HyperoptSpace"]

_ARITY = {
    "choice": None,
    "randint": 2,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "normal": 2,
    "qnormal": 3,
    "lognormal": 2,
    "qlognormal": 3,
}
_BOUNDED = {"uniform", "quniform", "loguniform", "qloguniform"}


@dataclass(frozen=True)
class _Option:
    value: Any  # the plain option, or the ``_name`` of a nested one
    nested: bool
    params: dict[str, _Param] = field(default_factory=dict)


@dataclass(frozen=True)
class _Param:
    label: str
    type: str
    args: tuple[float, ...] = ()
    options: tuple[_Option, ...] = ()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _parse(space: Mapping[str, Any], prefix: str, where: str) -> dict[str, _Param]:
    if not isinstance(space, Mapping):
        raise ConfigError("must be an object of parameter specs", field=where or "searchSpace")
    return {
        name: _parse_param(spec, f"{prefix}[{name}]", f"{where}.{name}" if where else name)
        for name, spec in space.items()
        if name != "_name"
    }


def _parse_param(spec: Any, label: str, where: str) -> _Param:
    field_ = f"searchSpace.{where}"
    if not isinstance(spec, Mapping) or spec.get("_type") not in _ARITY:
        raise ConfigError(f"needs a _type among {', '.join(_ARITY)}", field=field_)
    kind, value = spec["_type"], spec.get("_value")
    if not isinstance(value, list) or not value:
        raise ConfigError("_value must be a non-empty list", field=field_)
    if kind == "choice":
        options = []
        for i, opt in enumerate(value):
            if isinstance(opt, Mapping):
                if "_name" not in opt:
                    raise ConfigError("a nested choice option needs a _name", field=field_)
                sub = _parse(opt, f"{label}[{i}]", f"{where}[{i}]")
                options.append(_Option(opt["_name"], nested=True, params=sub))
            else:
                options.append(_Option(opt, nested=False))
        return _Param(label, kind, options=tuple(options))
    if len(value) != _ARITY[kind] or not all(_is_number(v) for v in value):
        raise ConfigError(f"{kind} needs {_ARITY[kind]} numbers in _value", field=field_)
    args = tuple(float(v) for v in value)
    if kind in _BOUNDED | {"randint"} and not args[0] < args[1]:
        raise ConfigError(f"{kind} needs lower < upper", field=field_)
    if kind.startswith(("log", "qlog")) and kind in _BOUNDED and args[0] <= 0:
        raise ConfigError(f"{kind} needs a positive lower bound", field=field_)
    return _Param(label, kind, args)


def _expr(param: _Param) -> Any:
    a, label = param.args, param.label
    match param.type:
        case "choice":
            return hp.choice(
                label,
                [
                    {"_name": o.value, **{k: _expr(p) for k, p in o.params.items()}}
                    if o.nested
                    else o.value
                    for o in param.options
                ],
            )
        case "randint":
            return hp.randint(label, int(a[1]) - int(a[0]))
        case "loguniform":
            return hp.loguniform(label, math.log(a[0]), math.log(a[1]))
        case "qloguniform":
            return hp.qloguniform(label, math.log(a[0]), math.log(a[1]), a[2])
        case _:
            return getattr(hp, param.type)(label, *a)


def _same_option(option: Any, value: Any) -> bool:
    if _is_number(option) and _is_number(value):
        return bool(option == value)
    return type(option) is type(value) and bool(option == value)


class HyperoptSpace:
    """One NNI search space, as a hyperopt expression plus ``vals`` ↔ parameters mapping."""

    def __init__(self, search_space: Mapping[str, Any]) -> None:
        """Parse ``search_space``; `ConfigError` names the offending parameter."""
        self._params = _parse(search_space, "root", "")
        self.expr: dict[str, Any] = {name: _expr(p) for name, p in self._params.items()}
        self.size = self._size(self._params)
        """Number of distinct configurations, or None if the space is not finite."""

    @classmethod
    def _size(cls, params: Mapping[str, _Param]) -> int | None:
        total = 1
        for p in params.values():
            if p.type == "randint":
                total *= int(p.args[1]) - int(p.args[0])
            elif p.type == "choice":
                sizes = [cls._size(o.params) for o in p.options]
                if any(s is None for s in sizes):
                    return None
                total *= sum(s for s in sizes if s is not None)
            else:
                return None
        return total

    def to_params(self, vals: Mapping[str, Any]) -> dict[str, Any]:
        """NNI parameters (plain JSON types) for hyperopt ``vals`` (label → value)."""
        return self._to_params(self._params, vals)

    def _to_params(self, params: Mapping[str, _Param], vals: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in params.items():
            raw, a = vals[p.label], p.args
            if p.type == "choice":
                opt = p.options[int(raw)]
                out[name] = (
                    {"_name": opt.value, **self._to_params(opt.params, vals)}
                    if opt.nested
                    else opt.value
                )
            elif p.type == "randint":
                out[name] = int(raw) + int(a[0])
            elif p.type in _BOUNDED and p.type != "uniform":
                # NNI clips quantised values to the bounds; loguniform only needs it
                # against exp(log(x)) rounding just outside them.
                out[name] = min(max(float(raw), a[0]), a[1])
            else:
                out[name] = float(raw)
        return out

    def to_vals(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """hyperopt ``vals`` for NNI ``parameters``: active labels only.

        Raises `ValueError` if the parameters do not belong to this space.
        """
        vals: dict[str, Any] = {}
        self._to_vals(self._params, parameters, vals)
        return vals

    def _to_vals(
        self, params: Mapping[str, _Param], given: Mapping[str, Any], vals: dict[str, Any]
    ) -> None:
        if not isinstance(given, Mapping):
            raise ValueError(f"expected an object of parameters, got {given!r}")
        for name, p in params.items():
            if name not in given:
                raise ValueError(f"parameter {name!r} is missing")
            value, a = given[name], p.args
            if p.type == "choice":
                vals[p.label] = self._choice_index(p, value, vals)
                continue
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name}={value!r} is not a finite number")
            if p.type == "randint":
                if not float(value).is_integer() or not a[0] <= value < a[1]:
                    raise ValueError(f"{name}={value!r} is not an integer in [{a[0]}, {a[1]})")
                vals[p.label] = int(value) - int(a[0])
            elif p.type in _BOUNDED and not a[0] <= value <= a[1]:
                raise ValueError(f"{name}={value!r} is outside [{a[0]}, {a[1]}]")
            elif (p.type == "lognormal" and value <= 0) or (p.type == "qlognormal" and value < 0):
                raise ValueError(f"{name}={value!r} is outside the support of {p.type}")
            else:
                vals[p.label] = float(value)

    def _choice_index(self, p: _Param, value: Any, vals: dict[str, Any]) -> int:
        for i, opt in enumerate(p.options):
            if opt.nested and isinstance(value, Mapping) and value.get("_name") == opt.value:
                self._to_vals(opt.params, value, vals)
                return i
            if not opt.nested and _same_option(opt.value, value):
                return i
        raise ValueError(f"{value!r} is not an option of {p.label}")

    def enumerate_vals(self) -> Iterator[dict[str, Any]]:
        """Every configuration of a finite space as ``vals``, in a fixed order."""
        if self.size is None:
            raise ValueError("the search space is not finite")
        return self._enumerate(self._params)

    def _enumerate(self, params: Mapping[str, _Param]) -> Iterator[dict[str, Any]]:
        per_param: list[list[dict[str, Any]]] = []
        for p in params.values():
            if p.type == "randint":
                per_param.append([{p.label: i} for i in range(int(p.args[1]) - int(p.args[0]))])
            else:
                per_param.append(
                    [
                        {p.label: i, **sub}
                        for i, opt in enumerate(p.options)
                        for sub in self._enumerate(opt.params)
                    ]
                )
        for combo in itertools.product(*per_param):
            merged: dict[str, Any] = {}
            for part in combo:
                merged.update(part)
            yield merged
