"""The bridge from NNI's tuner interface to an Optuna sampler, through ask and tell.

An NNI search space becomes Optuna distributions, one per parameter path
(``model/0/C`` is ``C`` inside option 0 of ``model``); a nested choice is asked
define-by-run, so only the active branch's parameters exist in a trial:

- ``choice`` -> categorical over option indexes; ``randint`` -> int over the offsets,
- ``uniform``/``quniform`` -> float over the range, ``loguniform``/``qloguniform`` ->
  float over the log range (Optuna sees the log value, so every sampler searches log
  types on the log scale), rounded to ``q`` and clipped on output,
- ``normal``/``lognormal`` and their q-types -> float quantile in (0, 1) mapped through
  the normal's inverse CDF (Optuna needs bounded ranges; the prior is uniform in quantile).

Every trial is minimised: values are losses, negated for maximised objectives. A running
trial stays RUNNING in the study (samplers that lie about running trials see it); a
trial that ends without a result is told FAIL; a result for an unknown, failed or
imported configuration is added as a finished trial. A duplicate suggestion is told FAIL
(samplers ignore failed trials) and re-asked; after `_MAX_REDRAWS` a finite space
yields a random unproposed configuration through `Study.enqueue_trial`, an infinite one
accepts the duplicate.
"""

from __future__ import annotations

import logging
import math
import statistics
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.trial import Trial, TrialState

from kubesweep_tuner.algorithms.base import NoMoreTrials, Tuner
from kubesweep_tuner.algorithms.nni_space import Internal, Key, NniSpace, ParamSpec, params_key
from kubesweep_tuner.algorithms.support import decode_import

__all__ = ["OptunaTuner"]

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

_MAX_REDRAWS = 10
_ENUMERATE_LIMIT = 100_000
_EPS = 1e-6  # quantiles of normal types stay inside (0, 1)


def _path(key: Key) -> str:
    return "/".join(str(part) for part in key)


def _distribution(spec: ParamSpec) -> BaseDistribution:
    if spec.type == "choice":
        return CategoricalDistribution(list(range(spec.size)))
    if spec.type == "randint":
        return IntDistribution(0, spec.size - 1)
    if spec.normal:
        return FloatDistribution(_EPS, 1 - _EPS)
    return FloatDistribution(spec.low, spec.high)


def _to_raw(spec: ParamSpec, value: Any) -> Any:
    """The Optuna value for an internal (final) value: the inverse of the mapping above."""
    if spec.categorical:
        return int(value)
    x = float(value)
    if spec.log:
        x = math.log(x) if x > 0 else -math.inf
    if spec.normal:
        u = statistics.NormalDist(spec.mu, spec.sigma).cdf(x) if math.isfinite(x) else 0.0
        return min(max(u, _EPS), 1 - _EPS)
    return min(max(x, spec.low), spec.high)


def _from_raw(spec: ParamSpec, raw: Any) -> Any:
    if spec.categorical:
        return int(raw)
    if spec.normal:
        return spec.from_unit(float(raw))
    return spec.finalize(float(raw))


@dataclass
class _Pending:
    trial: Trial
    params: dict[str, Any]


class OptunaTuner(Tuner):
    """Base of the Optuna-backed tuners: subclasses only build the sampler.

    With several named objectives and ``multi_objective`` set, the study has one
    minimised direction per objective and receives the whole loss vector.
    """

    def __init__(self, *, optimize_mode: str = "minimize", seed: int | None = None) -> None:
        """Validate the shared classArgs; subclasses validate their own first."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self._space: NniSpace | None = None
        self._study: optuna.Study | None = None
        self._dists: dict[Key, BaseDistribution] = {}
        self._pending: dict[int, _Pending] = {}
        self._reported: set[int] = set()
        self._generated: dict[int, dict[str, Any]] = {}
        self._results: list[tuple[dict[str, Any], list[float]]] = []
        self._seen: set[str] = set()
        self._rng = np.random.default_rng(seed)

    @abstractmethod
    def make_sampler(self) -> BaseSampler:
        """A fresh sampler, seeded with ``self.seed``; called for every new study."""

    @property
    def _vector(self) -> bool:
        return self.multi_objective and len(self.objectives) > 1

    # search space --------------------------------------------------------------------------

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Start a new study over ``search_space``, holding every earlier result that fits."""
        space = NniSpace(search_space)
        space.require(self.supported_types, self.supports_nested, type(self).__name__)
        self._space = space
        self._dists = {spec.key: _distribution(spec) for spec in space.specs}
        directions: list[Literal["minimize", "maximize"]] = ["minimize"] * (
            len(self.objectives) if self._vector else 1
        )
        self._study = optuna.create_study(sampler=self.make_sampler(), directions=directions)
        self._pending.clear()
        self._seen = set()
        for params in self._generated.values():
            if self._fits(params) is not None:
                self._seen.add(params_key(params))
        for params, losses in self._results:
            self._add_finished(params, losses)

    def _fits(self, params: Any) -> Internal | None:
        assert self._space is not None
        try:
            return self._space.to_internal(params)
        except (ValueError, TypeError, KeyError):
            return None

    # suggestions ---------------------------------------------------------------------------

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """Ask the study; re-ask on a duplicate (see the module docstring)."""
        if self._space is None or self._study is None:
            raise RuntimeError("update_search_space must be called before generate_parameters")
        size = self._space.size
        if size is not None and len(self._seen) >= size:
            raise NoMoreTrials(f"all {size} configurations have been proposed")
        for attempt in range(_MAX_REDRAWS + 1):
            if attempt == _MAX_REDRAWS:
                self._enqueue_unseen()
            trial = self._study.ask()
            params = self._space.to_params(self._suggest(trial))
            key = params_key(params)
            if key not in self._seen or (attempt == _MAX_REDRAWS and size is None):
                break
            self._study.tell(trial, state=TrialState.FAIL)
        self._seen.add(key)
        self._pending[parameter_id] = _Pending(trial, params)
        self._generated[parameter_id] = params
        return params

    def _suggest(self, trial: Trial) -> Internal:
        assert self._space is not None
        chosen: Internal = {}
        for spec in self._space.specs:
            if not spec.active(chosen):
                continue
            name, dist = _path(spec.key), self._dists[spec.key]
            raw: Any
            if isinstance(dist, CategoricalDistribution):
                raw = trial.suggest_categorical(name, list(dist.choices))
            elif isinstance(dist, IntDistribution):
                raw = trial.suggest_int(name, dist.low, dist.high)
            else:
                assert isinstance(dist, FloatDistribution)
                raw = trial.suggest_float(name, dist.low, dist.high)
            chosen[spec.key] = _from_raw(spec, raw)
        return chosen

    def _enqueue_unseen(self) -> None:
        """Queue a random configuration never proposed (finite spaces) for the next ask."""
        assert self._space is not None
        assert self._study is not None
        size = self._space.size
        if size is None or size > _ENUMERATE_LIMIT:
            return
        unseen = [
            c
            for c in self._space.enumerate()
            if params_key(self._space.to_params(c)) not in self._seen
        ]
        if unseen:
            self._study.enqueue_trial(self._raw(unseen[int(self._rng.integers(len(unseen)))]))

    def _raw(self, internal: Internal) -> dict[str, Any]:
        assert self._space is not None
        return {
            _path(spec.key): _to_raw(spec, internal[spec.key])
            for spec in self._space.specs
            if spec.key in internal
        }

    # results -------------------------------------------------------------------------------

    def _losses(self, value: Any) -> list[float] | None:
        try:
            losses = self.metric_to_losses(value) if self._vector else [self.metric_to_loss(value)]
        except ValueError as exc:
            log.warning("ignoring a result: %s", exc)
            return None
        if not all(math.isfinite(x) for x in losses):
            log.warning("ignoring non-finite metric %r", value)
            return None
        return losses

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        """Tell the trial's study its losses; the first result per id counts."""
        if parameter_id in self._reported:
            return
        losses = self._losses(value)
        if losses is None:
            return
        self._reported.add(parameter_id)
        pending = self._pending.pop(parameter_id, None)
        if self._study is None:
            self._results.append((parameters, losses))
            return
        if pending is not None:
            self._study.tell(pending.trial, values=losses)
            self._results.append((pending.params, losses))
        elif self._add_finished(parameters, losses):
            self._results.append((parameters, losses))

    def trial_end(self, parameter_id: int, success: bool) -> None:
        """A trial that ends without a result is told FAIL (a later result is added anew)."""
        pending = self._pending.pop(parameter_id, None)
        if pending is not None and self._study is not None:
            self._study.tell(pending.trial, state=TrialState.FAIL)

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Add NNI-format records as finished trials; records outside the space are skipped."""
        for record in data:
            decoded = decode_import(record)
            if decoded is None:
                continue
            params, value = decoded
            losses = self._losses(value)
            if losses is not None and self._add_finished(params, losses):
                self._results.append((params, losses))

    def _add_finished(self, params: Any, losses: list[float]) -> bool:
        """Add a finished trial for ``params`` if they fit the space; whether they did."""
        if self._space is None or self._study is None:
            return False
        internal = self._fits(params)
        if internal is None:
            log.info("ignoring a result outside the search space: %r", params)
            return False
        raw = self._raw(internal)
        dists = {_path(k): self._dists[k] for k in internal}
        self._study.add_trial(
            optuna.trial.create_trial(params=raw, distributions=dists, values=losses)
        )
        self._seen.add(params_key(self._space.to_params(internal)))
        return True
