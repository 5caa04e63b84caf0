"""NNI search spaces as a flat list of parameter specs, after NNI 3.0's ``hpo_utils.formatting``.

A configuration is held *internally* as ``{key: value}`` where ``key`` is the parameter's
path (``("model", 0, "C")`` is ``C`` inside option 0 of ``model``), a categorical value is
an option index and a numeric value is already the final user value (exp'ed, quantised,
clipped). Only the keys active in that configuration are present. `NniSpace.to_params`
turns it into NNI parameters; `NniSpace.to_internal` does the reverse and checks
membership. Unlike NNI, a ``choice`` may mix nested (dict) and plain options.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.hyperopt_space import HyperoptSpace

__all__ = ["Internal", "Key", "NniSpace", "ParamSpec", "params_key"]

Key = tuple[str | int, ...]
Internal = dict[Key, Any]


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical string for a parameter dict, to detect duplicates."""
    return json.dumps(params, sort_keys=True)


def _same_option(option: Any, value: Any) -> bool:
    # True == 1 in Python; a choice of [1, True] must keep them apart, but 2 matches 2.0.
    numbers = (int, float)
    if isinstance(option, numbers) and isinstance(value, numbers):
        if isinstance(option, bool) or isinstance(value, bool):
            return type(option) is type(value) and option == value
        return bool(option == value)
    return type(option) is type(value) and bool(option == value)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter; for log types ``low``, ``high``, ``mu`` and ``sigma`` are in log space."""

    key: Key
    type: str
    values: tuple[Any, ...]
    categorical: bool
    size: int = 0
    low: float = 0.0
    high: float = 0.0
    mu: float = 0.0
    sigma: float = 1.0
    q: float | None = None
    clip: tuple[float, float] | None = None
    log: bool = False
    normal: bool = False

    @property
    def name(self) -> str:
        """The parameter's own name (last element of its key)."""
        return str(self.key[-1])

    def active(self, partial: Mapping[Key, Any]) -> bool:
        """Whether this parameter exists given the choices made so far (NNI's is_activated_in)."""
        if len(self.key) < 2 or isinstance(self.key[-2], str):
            return True
        return bool(partial.get(self.key[:-2]) == self.key[-2])

    def is_nested(self, index: int) -> bool:
        """Whether option ``index`` of a choice is a nested sub-space."""
        option = self.values[index]
        return isinstance(option, Mapping) and "_name" in option

    def finalize(self, x: float) -> float:
        """A base-space number (log space for log types) as the user's value: exp, round, clip."""
        if not math.isfinite(x):
            return x  # only the grid's 0/1 CDF points of normal types; never returned
        if self.log:
            x = math.exp(x)
        if self.q is not None:
            x = round(x / self.q) * self.q
        if self.clip is not None:
            x = min(max(x, self.clip[0]), self.clip[1])
        return float(x)

    def from_unit(self, u: float) -> float:
        """The value at quantile ``u`` in [0, 1] of this parameter (NNI grid's inverse CDF)."""
        if self.normal:
            if not 0 < u < 1:  # the CDF's ends: only ever compared, never proposed
                return self.finalize(-math.inf if u <= 0 else math.inf)
            return self.finalize(statistics.NormalDist(self.mu, self.sigma).inv_cdf(u))
        return self.finalize(self.low + (self.high - self.low) * u)

    def sample(self, rng: np.random.Generator) -> int | float:
        """A random draw from the prior: an option index, or a numeric value."""
        if self.categorical:
            return int(rng.integers(self.size))
        if self.normal:
            return self.finalize(float(rng.normal(self.mu, self.sigma)))
        return self.finalize(float(rng.uniform(self.low, self.high)))


def _format(space: Mapping[str, Any], parent: Key) -> list[ParamSpec]:
    specs: list[ParamSpec] = []
    for name, spec in space.items():
        if name == "_name":
            continue
        key: Key = (*parent, name)
        kind, value = spec["_type"], list(spec["_value"])
        specs.append(_format_param(key, kind, value))
        if kind == "choice":
            for index, option in enumerate(value):
                if isinstance(option, Mapping) and "_name" in option:
                    specs += _format(option, (*key, index))
    return specs


def _format_param(key: Key, kind: str, value: list[Any]) -> ParamSpec:
    if kind == "choice":
        return ParamSpec(key, kind, tuple(value), categorical=True, size=len(value))
    if kind == "randint":
        lower, upper = math.ceil(float(value[0])), math.ceil(float(value[1]))
        return ParamSpec(key, kind, tuple(value), categorical=True, size=upper - lower)
    q = float(value[2]) if kind.startswith("q") else None
    log = "log" in kind
    if "normal" in kind:
        return ParamSpec(
            key,
            kind,
            tuple(value),
            False,
            mu=float(value[0]),
            sigma=float(value[1]),
            q=q,
            log=log,
            normal=True,
        )
    low, high = float(value[0]), float(value[1])
    clip = (low, high) if q is not None else None
    if log:
        low, high = math.log(low), math.log(high)
    return ParamSpec(key, kind, tuple(value), False, low=low, high=high, q=q, clip=clip, log=log)


class NniSpace:
    """A validated NNI search space as an ordered list of `ParamSpec` (parents before children)."""

    def __init__(self, search_space: Mapping[str, Any]) -> None:
        """Validate ``search_space`` (`ConfigError` names the offending parameter) and format it."""
        # One validator for every tuner: HyperoptSpace's checks and membership test.
        self._checker = HyperoptSpace(search_space)
        self.specs: list[ParamSpec] = _format(search_space, ())
        self.size: int | None = self._checker.size
        """Number of distinct configurations, or None if the space is not finite."""

    def types(self) -> set[str]:
        """Every ``_type`` used in the space."""
        return {s.type for s in self.specs}

    def has_nested(self) -> bool:
        """Whether any choice has a nested option."""
        return any(len(s.key) > 1 for s in self.specs)

    def require(self, types: frozenset[str] | None, nested: bool, tuner: str) -> None:
        """Raise `ConfigError` if the space uses a type or nesting ``tuner`` does not support."""
        extra = sorted(self.types() - types) if types is not None else []
        if extra:
            raise ConfigError(
                f"{tuner} supports only {', '.join(sorted(types or ()))}; got {', '.join(extra)}",
                field="searchSpace",
            )
        if not nested and self.has_nested():
            raise ConfigError(f"{tuner} does not support nested choice", field="searchSpace")

    def to_params(self, internal: Mapping[Key, Any]) -> dict[str, Any]:
        """NNI parameters (plain JSON types) for an internal configuration."""
        out: dict[str, Any] = {}
        for spec in self.specs:
            if spec.key not in internal:
                continue
            x = internal[spec.key]
            if spec.type == "randint":
                _assign(out, spec.key, int(math.ceil(float(spec.values[0])) + int(x)))
            elif spec.type == "choice":
                option = spec.values[int(x)]
                if spec.is_nested(int(x)):
                    _assign(out, (*spec.key, "_name"), option["_name"])
                else:
                    _assign(out, spec.key, option)
            else:
                _assign(out, spec.key, float(x))
        return out

    def to_internal(self, params: Any) -> Internal:
        """The internal form of NNI ``params``; `ValueError` if they are not in this space."""
        self._checker.to_vals(params)  # raises ValueError with the reason
        internal: Internal = {}
        for spec in self.specs:
            if not spec.active(internal):
                continue
            value: Any = params
            for part in spec.key:
                if isinstance(part, str):
                    value = value[part]
            if spec.type == "randint":
                internal[spec.key] = int(value) - math.ceil(float(spec.values[0]))
            elif spec.type == "choice":
                internal[spec.key] = self._index(spec, value)
            else:
                internal[spec.key] = float(value)
        return internal

    @staticmethod
    def _index(spec: ParamSpec, value: Any) -> int:
        for i, option in enumerate(spec.values):
            if spec.is_nested(i):
                if isinstance(value, Mapping) and value.get("_name") == option["_name"]:
                    return i
            elif _same_option(option, value):
                return i
        raise ValueError(f"{value!r} is not an option of {spec.name}")

    def sample(
        self,
        rng: np.random.Generator,
        base: Mapping[Key, Any] | None = None,
        resample: Key | None = None,
    ) -> Internal:
        """A random configuration; with ``base``, a copy of it with only ``resample`` redrawn.

        Parameters that a redrawn choice newly activates are drawn too (NNI's
        ``json2parameter`` with ``is_rand``).
        """
        out: Internal = {}
        for spec in self.specs:
            if not spec.active(out):
                continue
            keep = base is not None and spec.key in base and spec.key != resample
            out[spec.key] = base[spec.key] if keep and base is not None else spec.sample(rng)
        return out

    def enumerate(self) -> Iterator[Internal]:
        """Every configuration of a finite space, in a fixed order."""
        if self.size is None:
            raise ValueError("the search space is not finite")
        return self._enumerate(0, {})

    def _enumerate(self, i: int, partial: Internal) -> Iterator[Internal]:
        if i == len(self.specs):
            yield dict(partial)
            return
        spec = self.specs[i]
        if not spec.active(partial):
            yield from self._enumerate(i + 1, partial)
            return
        for index in range(spec.size):
            partial[spec.key] = index
            yield from self._enumerate(i + 1, partial)
            del partial[spec.key]


def _assign(params: dict[str, Any], key: Key, value: Any) -> None:
    # Integer parts of a key (option indexes) do not appear in the parameters.
    if len(key) == 1:
        params[str(key[0])] = value
    elif isinstance(key[0], int):
        _assign(params, key[1:], value)
    else:
        _assign(params.setdefault(key[0], {}), key[1:], value)
