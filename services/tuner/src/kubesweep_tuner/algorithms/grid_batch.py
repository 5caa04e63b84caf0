"""GridSearch and Batch: deterministic enumerations, after NNI 3.0's gridsearch/batch tuners.

Neither learns from results; both accept no classArgs (NNI's ``acceptClassArgs: false``)
and raise `NoMoreTrials` once every configuration has been proposed. Configurations seen
in imported data or in results of customised trials are skipped.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.base import NoMoreTrials, Tuner
from kubesweep_tuner.algorithms.nni_space import Internal, NniSpace, ParamSpec, params_key
from kubesweep_tuner.algorithms.registry import register
from kubesweep_tuner.algorithms.support import decode_import, loss_or_none

__all__ = ["BatchTuner", "GridSearchTuner"]

log = logging.getLogger(__name__)


class _Enumeration(Tuner):
    """Shared bookkeeping: the set of configurations already proposed or evaluated."""

    deterministic = True

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()
        self._ready = False

    def _require_space(self) -> None:
        if not self._ready:
            raise RuntimeError("update_search_space must be called before generate_parameters")

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        """Remember the configuration so it is not proposed again; the value is not used."""
        if isinstance(parameters, dict) and parameters:
            self._seen.add(params_key(parameters))

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Skip the imported configurations that carry a valid metric (NNI's behaviour)."""
        for record in data:
            decoded = decode_import(record)
            valid = decoded is not None and loss_or_none(self, decoded[1]) is not None
            if decoded is not None and valid and isinstance(decoded[0], dict):
                self._seen.add(params_key(decoded[0]))


@register("GridSearch", "GridSearchTuner")
class GridSearchTuner(_Enumeration):
    """Exhaustive grid, refined epoch by epoch for numeric parameters (NNI 3.0's algorithm).

    Categorical parameters (``choice``, ``randint``) contribute all their values. A
    numeric parameter starts at its median (quantile 1/2); each time the grid is
    exhausted, every interval between known quantiles is halved (1/4, 3/4, then 1/8...),
    normal types through the inverse CDF. An interval stops dividing once quantisation
    or bounds make both halves give the same value, so a space of only choice, randint
    and q-types is finite; the others refine for ever.
    """

    def __init__(self) -> None:
        """GridSearch takes no classArgs."""
        super().__init__()
        self._space: NniSpace | None = None
        self._grid: list[list[float]] | None = None  # per spec: option indexes or quantiles
        self._vector: list[int] | None = None
        self._epoch_bar: list[int] = []
        self._divisions: dict[int, list[tuple[float, float]]] = {}

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Restart the enumeration on the new space; proposed configurations stay skipped."""
        self._space = NniSpace(search_space)
        if not self._space.specs:
            raise ConfigError("the search space is empty", field="searchSpace")
        self._ready = True
        specs = self._space.specs
        self._epoch_bar = [0] * len(specs)
        self._vector = None
        self._grid = []
        self._divisions = {}
        for i, spec in enumerate(specs):
            if spec.categorical:
                self._grid.append([float(x) for x in range(spec.size)])
                continue
            self._grid.append([0.5])
            self._divisions[i] = [
                (lo, hi) for lo, hi in ((0.0, 0.5), (0.5, 1.0)) if _less(lo, hi, spec)
            ]

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """The next grid point not proposed before; `NoMoreTrials` once the grid is exhausted."""
        self._require_space()
        assert self._space is not None
        while True:
            internal = self._suggest()
            if internal is None:
                raise NoMoreTrials("the search space has been fully explored")
            params = self._space.to_params(internal)
            key = params_key(params)
            if key not in self._seen:
                self._seen.add(key)
                return params

    def _suggest(self) -> Internal | None:
        while self._grid is not None:
            self._next_vector()
            if self._vector is None:  # end of this epoch: refine, then start over
                self._next_grid()
                continue
            bars = zip(self._vector, self._epoch_bar, strict=True)
            if all(v < bar for v, bar in bars):
                continue  # every coordinate existed last epoch: already proposed
            return self._current()
        return None

    def _next_vector(self) -> None:
        # Odometer over the active dimensions only, so unchosen nested options stay put.
        assert self._space is not None
        assert self._grid is not None
        if self._vector is None:
            self._vector = [0] * len(self._space.specs)
            return
        current = self._current()
        active = [i for i, spec in enumerate(self._space.specs) if spec.active(current)]
        for i in reversed(active):
            if self._vector[i] + 1 < len(self._grid[i]):
                self._vector[i] += 1
                return
            self._vector[i] = 0
        self._vector = None

    def _next_grid(self) -> None:
        assert self._space is not None
        assert self._grid is not None
        updated = False
        for i, spec in enumerate(self._space.specs):
            self._epoch_bar[i] = len(self._grid[i])
            if spec.categorical:
                continue
            new_points, new_divisions = [], []
            for lo, hi in self._divisions[i]:
                mid = (lo + hi) / 2
                left, right = _less(lo, mid, spec), _less(mid, hi, spec)
                if left and right:
                    new_points.append(mid)
                    updated = True
                if left:
                    new_divisions.append((lo, mid))
                if right:
                    new_divisions.append((mid, hi))
            self._grid[i] += new_points
            self._divisions[i] = new_divisions
        if not updated:
            self._grid = None
        else:
            log.debug("grid refined: %s", [len(g) for g in self._grid])

    def _current(self) -> Internal:
        assert self._space is not None
        assert self._grid is not None
        assert self._vector is not None
        out: Internal = {}
        for i, spec in enumerate(self._space.specs):
            if spec.active(out):
                x = self._grid[i][self._vector[i]]
                out[spec.key] = int(x) if spec.categorical else spec.from_unit(x)
        return out


def _less(lo: float, hi: float, spec: ParamSpec) -> bool:
    # Whether two quantiles still give different values once quantised and clipped.
    return spec.from_unit(lo) < spec.from_unit(hi)


@register("Batch", "BatchTuner")
class BatchTuner(_Enumeration):
    """Runs a user-given list of configurations, in order (NNI's BatchTuner).

    The space is a single ``choice`` parameter, by convention named ``combine_params``,
    whose options are complete parameter dicts. An option that is not a dict is
    proposed as ``{<name>: option}`` (NNI would pass the bare value, which is not a
    valid parameter object).
    """

    supported_types = frozenset({"choice"})
    supports_nested = False

    def __init__(self) -> None:
        """Batch takes no classArgs."""
        super().__init__()
        self._values: list[dict[str, Any]] = []
        self._next = 0

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Accept exactly one ``choice`` parameter; its options become the batch."""
        if not isinstance(search_space, dict) or len(search_space) != 1:
            raise ConfigError(
                'Batch needs exactly one parameter: {"combine_params": {"_type": "choice",'
                ' "_value": [{...}, ...]}}',
                field="searchSpace",
            )
        ((name, spec),) = search_space.items()
        if not isinstance(spec, dict) or spec.get("_type") != "choice":
            raise ConfigError("Batch supports only the choice type", field=f"searchSpace.{name}")
        values = spec.get("_value")
        if not isinstance(values, list) or not values:
            raise ConfigError("_value must be a non-empty list", field=f"searchSpace.{name}")
        self._values = [copy.deepcopy(v) if isinstance(v, dict) else {name: v} for v in values]
        self._next = 0
        self._ready = True

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """The next listed configuration not seen before; `NoMoreTrials` after the last."""
        self._require_space()
        while self._next < len(self._values):
            params = self._values[self._next]
            self._next += 1
            key = params_key(params)
            if key not in self._seen:
                self._seen.add(key)
                return copy.deepcopy(params)
        raise NoMoreTrials(f"all {len(self._values)} configurations of the batch were proposed")
