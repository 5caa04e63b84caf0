"""Optuna-backed extra tuners (not in NNI): multivariate TPE, CMA-ES and NSGA-II.

All take NNI's search spaces (all ten types, nested choice), ``optimize_mode`` and
``seed``; see `kubesweep_tuner.algorithms.optuna_base` for the mapping. `OptunaTPE`
and `NSGAII` optimise every named objective of a multi-objective experiment.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, NSGAIISampler, TPESampler

from kubesweep_tuner.algorithms.base import check_bool, check_number
from kubesweep_tuner.algorithms.cma import CmaSampler
from kubesweep_tuner.algorithms.optuna_base import OptunaTuner
from kubesweep_tuner.algorithms.registry import register

__all__ = ["CmaEsTuner", "NsgaIITuner", "OptunaTpeTuner"]


@register("OptunaTPE", "MultivariateTPE")
class OptunaTpeTuner(OptunaTuner):
    """Optuna's ``TPESampler``, multivariate and grouped by default (models parameters
    jointly, and each nested-choice branch as its own group)."""

    multi_objective: ClassVar[bool] = True

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        group: bool = True,
        constant_liar: bool = True,
    ) -> None:
        """Optuna's defaults except ``multivariate``, ``group`` and ``constant_liar`` (on)."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self.n_startup_trials = int(
            check_number("n_startup_trials", n_startup_trials, integer=True, minimum=0)
        )
        self.n_ei_candidates = int(
            check_number("n_ei_candidates", n_ei_candidates, integer=True, minimum=1)
        )
        self.multivariate = check_bool("multivariate", multivariate)
        self.group = check_bool("group", group)
        self.constant_liar = check_bool("constant_liar", constant_liar)

    def make_sampler(self) -> BaseSampler:
        with warnings.catch_warnings():  # multivariate and group are "experimental" in Optuna
            warnings.simplefilter("ignore", ExperimentalWarning)
            return TPESampler(
                seed=self.seed,
                n_startup_trials=self.n_startup_trials,
                n_ei_candidates=self.n_ei_candidates,
                multivariate=self.multivariate,
                group=self.group and self.multivariate,
                constant_liar=self.constant_liar,
            )


@register("CMAES", "CmaEs", "CMA-ES")
class CmaEsTuner(OptunaTuner):
    """CMA-ES on the numeric parameters every trial has (categorical ones at random)."""

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        sigma0: float = 1 / 6,
        popsize: int | None = None,
        n_startup_trials: int = 1,
    ) -> None:
        """``sigma0`` is the initial step on each parameter's range scaled to [0, 1];
        ``popsize`` defaults to 4 + floor(3 ln n) for n numeric parameters."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self.sigma0 = check_number("sigma0", sigma0, minimum=0, maximum=1, exclusive=True)
        self.popsize = (
            None
            if popsize is None
            else int(check_number("popsize", popsize, integer=True, minimum=2, maximum=10_000))
        )
        self.n_startup_trials = int(
            check_number("n_startup_trials", n_startup_trials, integer=True, minimum=0)
        )

    def make_sampler(self) -> BaseSampler:
        return CmaSampler(
            seed=self.seed,
            sigma0=self.sigma0,
            popsize=self.popsize,
            n_startup_trials=self.n_startup_trials,
        )


@register("NSGAII", "NSGA-II", "NSGA2")
class NsgaIITuner(OptunaTuner):
    """Optuna's ``NSGAIISampler``: a genetic algorithm ranking by non-domination."""

    multi_objective: ClassVar[bool] = True

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        population_size: int = 50,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
    ) -> None:
        """Optuna's defaults; ``mutation_prob`` None means 1 / number of parameters."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self.population_size = int(
            check_number("population_size", population_size, integer=True, minimum=2)
        )
        self.mutation_prob = (
            None
            if mutation_prob is None
            else check_number("mutation_prob", mutation_prob, minimum=0, maximum=1)
        )
        self.crossover_prob = check_number("crossover_prob", crossover_prob, minimum=0, maximum=1)
        self.swapping_prob = check_number("swapping_prob", swapping_prob, minimum=0, maximum=1)

    def make_sampler(self) -> BaseSampler:
        return NSGAIISampler(
            seed=self.seed,
            population_size=self.population_size,
            mutation_prob=self.mutation_prob,
            crossover_prob=self.crossover_prob,
            swapping_prob=self.swapping_prob,
        )
