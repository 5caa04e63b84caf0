"""Naive evolution, after NNI 3.0's ``evolution_tuner.py``.

A population of ``population_size`` random configurations is proposed first. After
that, each suggestion runs a tournament: two evaluated individuals are drawn at random,
the worse one leaves the population and the better one is copied with exactly one of
its active parameters re-drawn (a re-drawn nested choice draws its new sub-parameters
too). Each result joins the population.

Differences from NNI, each because NNI's behaviour breaks a running experiment:
results of unknown parameter ids (customised, imported) join the population instead of
raising; when every individual is running the tuner proposes a random configuration
instead of raising ``NoMoreTrialError``; duplicates are re-drawn and a finite space ends
with `NoMoreTrials`; a search-space update keeps the results that fit the new space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubesweep_tuner.algorithms.base import NoMoreTrials, Tuner, check_number
from kubesweep_tuner.algorithms.nni_space import Internal, NniSpace, params_key
from kubesweep_tuner.algorithms.registry import register
from kubesweep_tuner.algorithms.support import decode_import, loss_or_none

__all__ = ["EvolutionTuner"]

log = logging.getLogger(__name__)

_MAX_REDRAWS = 20
_ENUMERATE_LIMIT = 10_000


@dataclass
class _Individual:
    config: Internal
    loss: float | None = None


@register("Evolution", "EvolutionTuner")
class EvolutionTuner(Tuner):
    """Tournament selection plus single-parameter mutation (NNI's Naive Evolution)."""

    def __init__(
        self,
        *,
        optimize_mode: str = "maximize",
        population_size: int = 32,
        seed: int | None = None,
    ) -> None:
        """Validate the classArgs; NNI's defaults (maximize, 32)."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self.population_size = int(
            check_number("population_size", population_size, integer=True, minimum=1, maximum=99999)
        )
        self._rng = np.random.default_rng(self.seed)
        self._space: NniSpace | None = None
        self._population: list[_Individual] = []
        self._running: dict[int, Internal] = {}
        self._generated: dict[int, dict[str, Any]] = {}
        self._observed: set[int] = set()
        self._history: list[tuple[dict[str, Any], float]] = []
        self._seen: set[str] = set()
        self._parent: Internal | None = None  # the tournament winner being mutated

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Start a fresh random population, plus every earlier result that fits the space."""
        space = NniSpace(search_space)
        self._space = space
        self._seen = set()
        self._population = []
        for params in self._generated.values():
            if self._fits(params) is not None:
                self._seen.add(params_key(params))
        for params, loss in self._history:
            config = self._fits(params)
            if config is not None:
                self._seen.add(params_key(params))
                self._population.append(_Individual(config, loss))
        self._running = {
            pid: config
            for pid, params in self._generated.items()
            if pid in self._running and (config := self._fits(params)) is not None
        }
        self._population += [
            _Individual(space.sample(self._rng)) for _ in range(self.population_size)
        ]

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """The next unevaluated individual, else a mutated tournament winner (never a repeat)."""
        space = self._require_space()
        if space.size is not None and len(self._seen) >= space.size:
            raise NoMoreTrials(f"all {space.size} configurations of the search space were tried")
        self._parent = None
        config = self._candidate(space)
        for _ in range(_MAX_REDRAWS):
            if params_key(space.to_params(config)) not in self._seen:
                break
            # Re-mutate the same parent: another tournament would kill another individual.
            parent = self._parent
            config = self._mutation(space, parent) if parent else space.sample(self._rng)
        params = space.to_params(config)
        finite = space.size is not None and space.size <= _ENUMERATE_LIMIT
        if params_key(params) in self._seen and finite:
            config = self._pick_unseen(space)
            params = space.to_params(config)
        self._seen.add(params_key(params))
        self._running[parameter_id] = config
        self._generated[parameter_id] = params
        return params

    def _candidate(self, space: NniSpace) -> Internal:
        for i, individual in enumerate(self._population):
            if individual.loss is None:
                del self._population[i]
                return individual.config
        if self._evaluated():
            return self._mutate(space)
        # Every individual is running: NNI raises here; a random one keeps slots busy.
        return space.sample(self._rng)

    def _evaluated(self) -> list[_Individual]:
        return [ind for ind in self._population if ind.loss is not None]

    def _mutate(self, space: NniSpace) -> Internal:
        evaluated = self._evaluated()
        order = self._rng.permutation(len(evaluated))
        winner = evaluated[int(order[0])]
        if len(evaluated) > 1:
            other = evaluated[int(order[1])]
            loser = other
            if (other.loss or 0.0) < (winner.loss or 0.0):
                winner, loser = other, winner
            self._population.remove(loser)  # the loser of the tournament dies
        self._parent = winner.config
        return self._mutation(space, winner.config)

    def _mutation(self, space: NniSpace, parent: Internal) -> Internal:
        active = [spec.key for spec in space.specs if spec.key in parent]
        if not active:
            return space.sample(self._rng)
        target = active[int(self._rng.integers(len(active)))]
        return space.sample(self._rng, base=parent, resample=target)

    def _pick_unseen(self, space: NniSpace) -> Internal:
        unseen = [c for c in space.enumerate() if params_key(space.to_params(c)) not in self._seen]
        return unseen[int(self._rng.integers(len(unseen)))]

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        """Add the evaluated individual to the population; repeats are ignored."""
        if parameter_id in self._observed:
            return
        self._observed.add(parameter_id)
        config = self._running.pop(parameter_id, None)
        generated = self._generated.get(parameter_id)
        if generated is None or (parameters and parameters != generated):
            config = None
            generated = parameters
        self._record(generated, value, config)

    def trial_end(self, parameter_id: int, success: bool) -> None:
        """A trial that failed without a result is replaced by a random individual (NNI)."""
        was_running = self._running.pop(parameter_id, None) is not None
        if was_running and not success and parameter_id not in self._observed:
            space = self._require_space()
            self._population.append(_Individual(space.sample(self._rng)))

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Add earlier results to the population; records that do not fit are skipped."""
        for record in data:
            decoded = decode_import(record)
            if decoded is not None:
                self._record(decoded[0], decoded[1], None)

    def _record(self, params: Any, value: Any, config: Internal | None) -> None:
        loss = loss_or_none(self, value)
        if loss is None or not isinstance(params, dict):
            return
        self._history.append((params, loss))
        if config is None and self._space is not None:
            config = self._fits(params)
        if config is not None:
            self._seen.add(params_key(params))
            self._population.append(_Individual(config, loss))

    def _fits(self, params: dict[str, Any]) -> Internal | None:
        assert self._space is not None
        try:
            return self._space.to_internal(params)
        except ValueError as exc:
            log.warning("parameters %r are not in the search space: %s", params, exc)
            return None

    def _require_space(self) -> NniSpace:
        if self._space is None:
            raise RuntimeError("update_search_space must be called before generate_parameters")
        return self._space
