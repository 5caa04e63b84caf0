"""CMA-ES as an Optuna sampler, in numpy (Hansen's (mu/mu_w, lambda)-CMA-ES, "purecma").

Optuna's own ``CmaEsSampler`` needs the ``cmaes`` package, which kubesweep does not
depend on; this is the textbook algorithm (Hansen, "The CMA Evolution Strategy: A
Tutorial", 2016, Fig. 6) over the numeric parameters every trial shares, each scaled
to [0, 1]. Categorical parameters (and parameters only some trials have, such as the
sub-parameters of a nested choice) are drawn at random by an independent sampler, as
in Optuna's sampler.

Asynchrony: every suggestion is a sample of the current generation; once ``popsize``
of that generation's trials have finished, the distribution is updated and the next
generation starts. Results of an older generation, and failed trials, are not used.
The first mean is the best finished trial so far (imports included), else the centre.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

__all__ = ["CmaSampler"]

_NUMERIC = (FloatDistribution, IntDistribution)


class _State:
    """The distribution N(mean, sigma^2 C) over [0, 1]^n and its evolution paths."""

    def __init__(self, mean: np.ndarray, sigma: float, popsize: int) -> None:
        n = len(mean)
        self.mean, self.sigma, self.popsize = mean, sigma, popsize
        self.generation = 0
        mu = popsize // 2
        weights = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        self.weights = weights / weights.sum()
        self.mueff = 1.0 / float(np.sum(self.weights**2))
        self.cc = (4 + self.mueff / n) / (n + 4 + 2 * self.mueff / n)
        self.cs = (self.mueff + 2) / (n + self.mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + self.mueff)
        self.cmu = min(
            1 - self.c1, 2 * (self.mueff - 2 + 1 / self.mueff) / ((n + 2) ** 2 + self.mueff)
        )
        self.damps = 1 + 2 * max(0.0, math.sqrt((self.mueff - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))
        self.pc, self.ps = np.zeros(n), np.zeros(n)
        self.cov = np.eye(n)

    def sample(self, rng: np.random.RandomState) -> np.ndarray:
        eigvals, basis = np.linalg.eigh(self.cov)
        scale = np.sqrt(np.maximum(eigvals, 1e-20))
        x: np.ndarray = self.mean
        for _ in range(10):  # resample a few times before repairing by clipping
            x = self.mean + self.sigma * basis @ (scale * rng.standard_normal(len(self.mean)))
            if np.all((x >= 0) & (x <= 1)):
                return x
        clipped: np.ndarray = np.clip(x, 0.0, 1.0)
        return clipped

    def tell(self, xs: Sequence[np.ndarray], losses: Sequence[float]) -> None:
        n, mu = len(self.mean), len(self.weights)
        order = np.argsort(np.asarray(losses), kind="stable")[:mu]
        best = np.asarray([xs[i] for i in order])
        old = self.mean
        self.mean = self.weights @ best
        y = (self.mean - old) / self.sigma
        eigvals, basis = np.linalg.eigh(self.cov)
        inv_sqrt = basis @ np.diag(1 / np.sqrt(np.maximum(eigvals, 1e-20))) @ basis.T
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * (
            inv_sqrt @ y
        )
        norm_ps = float(np.linalg.norm(self.ps))
        decay = 1 - (1 - self.cs) ** (2 * (self.generation + 1))
        hsig = norm_ps / math.sqrt(decay) / self.chi_n < 1.4 + 2 / (n + 1)
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(
            self.cc * (2 - self.cc) * self.mueff
        ) * y
        steps = (best - old) / self.sigma
        self.cov = (
            (1 - self.c1 - self.cmu) * self.cov
            + self.c1
            * (np.outer(self.pc, self.pc) + (1 - hsig) * self.cc * (2 - self.cc) * self.cov)
            + self.cmu * steps.T @ np.diag(self.weights) @ steps
        )
        self.cov = (self.cov + self.cov.T) / 2
        self.sigma *= math.exp((self.cs / self.damps) * (norm_ps / self.chi_n - 1))
        self.sigma = min(max(self.sigma, 1e-12), 1.0)
        self.generation += 1


class CmaSampler(BaseSampler):
    """CMA-ES over the shared numeric parameters, random draws for the rest."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        sigma0: float = 1 / 6,
        popsize: int | None = None,
        n_startup_trials: int = 1,
    ) -> None:
        self._rng = np.random.RandomState(seed)
        self._independent = RandomSampler(seed=seed)
        self._intersection = IntersectionSearchSpace()
        self._sigma0, self._popsize, self._startup = sigma0, popsize, n_startup_trials
        self._names: list[str] = []
        self._state: _State | None = None
        self._epoch = 0  # bumped whenever the shared parameters change and CMA-ES restarts
        self._asked: dict[int, tuple[tuple[int, int], np.ndarray]] = {}  # trial -> (when, x)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._independent.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._intersection.calculate(study)
        return {
            name: dist
            for name, dist in space.items()
            if isinstance(dist, _NUMERIC) and not dist.single()
        }

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(finished) < self._startup:
            return {}
        names = sorted(search_space)
        if names != self._names or self._state is None:
            self._names = names
            self._state = self._fresh_state(finished, search_space)
            self._epoch += 1
        state = self._state
        now = (self._epoch, state.generation)
        generation = [
            (self._asked[t.number][1], t.values[0])
            for t in finished
            if t.number in self._asked and self._asked[t.number][0] == now
        ]
        if len(generation) >= state.popsize:
            xs, losses = zip(*generation[: state.popsize], strict=True)
            state.tell(xs, losses)
        x = state.sample(self._rng)
        self._asked[trial.number] = ((self._epoch, state.generation), x)
        return {
            name: _from_unit(search_space[name], float(u)) for name, u in zip(names, x, strict=True)
        }

    def _fresh_state(
        self, finished: list[FrozenTrial], space: dict[str, BaseDistribution]
    ) -> _State:
        n = len(self._names)
        popsize = self._popsize or 4 + math.floor(3 * math.log(n))
        mean = np.full(n, 0.5)
        usable = [t for t in finished if all(name in t.params for name in self._names)]
        if usable:
            best = min(usable, key=lambda t: t.values[0])
            mean = np.array([_to_unit(space[name], best.params[name]) for name in self._names])
        return _State(mean, self._sigma0, popsize)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)


def _from_unit(dist: BaseDistribution, u: float) -> float | int:
    if isinstance(dist, IntDistribution):
        width = dist.high - dist.low + 1
        return int(min(dist.high, dist.low + math.floor(u * width)))
    assert isinstance(dist, FloatDistribution)
    return float(dist.low + u * (dist.high - dist.low))


def _to_unit(dist: BaseDistribution, value: Any) -> float:
    if isinstance(dist, IntDistribution):
        return (int(value) - dist.low + 0.5) / (dist.high - dist.low + 1)
    assert isinstance(dist, FloatDistribution)
    return (float(value) - dist.low) / (dist.high - dist.low)
