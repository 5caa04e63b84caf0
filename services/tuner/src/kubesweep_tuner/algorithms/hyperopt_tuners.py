"""TPE, Random and Anneal on hyperopt, registered under NNI's names.

classArgs follow NNI: the legacy hyperopt set (``optimize_mode``, ``seed``,
``parallel_optimize``, ``constant_liar_type``) and, for TPE, NNI 3.0's ``tpe_args``.
"""

from __future__ import annotations

import functools
from typing import Any

from hyperopt import anneal, rand, tpe

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.base import check_number, class_arg_field
from kubesweep_tuner.algorithms.hyperopt_base import Algorithm, HyperoptTuner
from kubesweep_tuner.algorithms.registry import register

__all__ = ["AnnealTuner", "RandomTuner", "TpeTuner"]

_HYPEROPT_LINEAR_FORGETTING = 25  # fixed inside hyperopt's TPE; not a suggest() argument


@register("TPE", "TPE_legacy")
class TpeTuner(HyperoptTuner):
    """Tree-structured Parzen Estimator (hyperopt ``tpe.suggest``).

    Accepts NNI's legacy classArgs (``parallel_optimize``, ``constant_liar_type``) and
    NNI 3.0's ``tpe_args``; ``tpe_args.constant_liar_type`` overrides the top-level one,
    and ``null`` there disables the liar.
    """

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        parallel_optimize: bool = True,
        constant_liar_type: str = "min",
        tpe_args: dict[str, Any] | None = None,
    ) -> None:
        """Validate the classArgs, including every ``tpe_args`` key."""
        if not isinstance(tpe_args, dict | None):
            raise ConfigError("must be an object", field=class_arg_field("tpe_args"))
        args = dict(tpe_args or {})
        if "constant_liar_type" in args:
            liar = args.pop("constant_liar_type")
            parallel_optimize = parallel_optimize and liar is not None
            constant_liar_type = constant_liar_type if liar is None else liar
        super().__init__(
            optimize_mode=optimize_mode,
            seed=seed,
            parallel_optimize=parallel_optimize,
            constant_liar_type=constant_liar_type,
        )
        self._suggest_kwargs = _tpe_kwargs(args)

    def _algorithm(self) -> Algorithm:
        return functools.partial(tpe.suggest, verbose=False, **self._suggest_kwargs)


def _tpe_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    def check(key: str, **bounds: Any) -> float:
        return check_number(f"tpe_args.{key}", args[key], **bounds)

    kwargs: dict[str, Any] = {}
    for key in args:
        if key == "n_startup_jobs":
            kwargs["n_startup_jobs"] = int(check(key, integer=True, minimum=0))
        elif key == "n_ei_candidates":
            kwargs["n_EI_candidates"] = int(check(key, integer=True, minimum=1))
        elif key == "gamma":
            kwargs["gamma"] = check(key, minimum=0, maximum=1, exclusive=True)
        elif key == "prior_weight":
            kwargs["prior_weight"] = check(key, minimum=0, exclusive=True)
        elif key == "linear_forgetting":
            if check(key, integer=True, minimum=1) != _HYPEROPT_LINEAR_FORGETTING:
                raise ConfigError(
                    f"hyperopt's TPE fixes linear_forgetting at {_HYPEROPT_LINEAR_FORGETTING};"
                    " remove the key or set it to 25",
                    field=class_arg_field("tpe_args.linear_forgetting"),
                )
        else:
            raise ConfigError(
                "unknown key; accepted: constant_liar_type, n_startup_jobs, n_ei_candidates,"
                " gamma, prior_weight, linear_forgetting",
                field=class_arg_field(f"tpe_args.{key}"),
            )
    return kwargs


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
