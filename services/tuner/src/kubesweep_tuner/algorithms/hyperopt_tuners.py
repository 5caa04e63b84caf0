"""TPE_legacy, Random and Anneal on hyperopt, registered under NNI's names.

classArgs follow NNI's HyperoptTuner (``optimize_mode``, ``parallel_optimize``,
``constant_liar_type``) plus ``seed``. NNI 3.0's default ``TPE`` is the numpy
implementation in `kubesweep_tuner.algorithms.tpe`.
"""

from __future__ import annotations

import functools

from hyperopt import anneal, rand, tpe

from kubesweep_tuner.algorithms.hyperopt_base import Algorithm, HyperoptTuner
from kubesweep_tuner.algorithms.registry import register

__all__ = ["AnnealTuner", "LegacyTpeTuner", "RandomTuner"]


@register("TPE_legacy")
class LegacyTpeTuner(HyperoptTuner):
    """Tree-structured Parzen Estimator on hyperopt ``tpe.suggest`` (NNI's ``TPE_legacy``).

    classArgs are NNI's HyperoptTuner set (``optimize_mode``, ``parallel_optimize``,
    ``constant_liar_type`` min | max | mean, also best | worst) plus kubesweep's ``seed``.
    NNI 3.0's ``TPE`` with ``tpe_args`` is `kubesweep_tuner.algorithms.tpe.TpeTuner`.
    """

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        parallel_optimize: bool = True,
        constant_liar_type: str = "min",
    ) -> None:
        """Validate the classArgs (NNI's HyperoptTuner set)."""
        super().__init__(
            optimize_mode=optimize_mode,
            seed=seed,
            parallel_optimize=parallel_optimize,
            constant_liar_type=constant_liar_type,
        )

    def _algorithm(self) -> Algorithm:
        return functools.partial(tpe.suggest, verbose=False)


@register("Random", "RandomSearch")
class RandomTuner(HyperoptTuner):
    """Independent random sampling from the prior (hyperopt ``rand.suggest``)."""

    def __init__(self, *, optimize_mode: str = "minimize", seed: int | None = None) -> None:
        """Validate the classArgs; ``optimize_mode`` only affects the recorded losses."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)

    def _algorithm(self) -> Algorithm:
        return rand.suggest  # type: ignore[no-any-return]


@register("Anneal")
class AnnealTuner(HyperoptTuner):
    """Simulated-annealing-like sampling around the best results (hyperopt ``anneal.suggest``)."""

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        parallel_optimize: bool = False,
        constant_liar_type: str = "min",
    ) -> None:
        """Validate the classArgs (NNI's HyperoptTuner set)."""
        super().__init__(
            optimize_mode=optimize_mode,
            seed=seed,
            parallel_optimize=parallel_optimize,
            constant_liar_type=constant_liar_type,
        )

    def _algorithm(self) -> Algorithm:
        return anneal.suggest  # type: ignore[no-any-return]
