"""TPE's ``tpe_args`` classArg (validated) and the constant liar for concurrent suggestions."""

from __future__ import annotations

import difflib
from typing import Any

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.base import check_number, class_arg_field
from kubesweep_tuner.algorithms.tpe.estimator import TpeArgs

__all__ = ["JOINT_DEFAULTS", "LIAR_TYPES", "Liar", "parse_tpe_args"]

LIAR_TYPES = ("best", "worst", "mean")
_KEYS = (
    "constant_liar_type",
    "n_startup_jobs",
    "n_ei_candidates",
    "linear_forgetting",
    "prior_weight",
    "gamma",
    "nni_compatible",
)
#: Defaults of the joint TPE (kubesweep's default): Optuna's n_startup_trials 10 and
#: gamma(N) = min(ceil(0.1 N), 25); running trials lie with the *worst* loss, so they
#: land in "above" as in Optuna's constant liar (NNI's "best" pulls concurrent
#: suggestions onto the running ones); the other defaults are NNI's (= Optuna's).
JOINT_DEFAULTS: dict[str, Any] = {
    "constant_liar_type": "worst",
    "n_startup_jobs": 10,
    "gamma": 0.1,
    "nni_compatible": False,
}


def parse_tpe_args(tpe_args: object) -> TpeArgs:
    """`TpeArgs` from the ``tpe_args`` object; `ConfigError` names the offending key.

    NNI passes the object to ``TpeArguments(**tpe_args)`` unchecked (an unknown key is a
    TypeError at start-up, a bad value fails later); here every value is checked up front.
    """
    if tpe_args is None:
        return TpeArgs(**JOINT_DEFAULTS)
    if not isinstance(tpe_args, dict):
        raise ConfigError("must be an object", field=class_arg_field("tpe_args"))
    kwargs: dict[str, Any] = {}
    for key, value in tpe_args.items():
        name = f"tpe_args.{key}"
        if key == "constant_liar_type":
            kwargs[key] = _liar_type(name, value)
        elif key in ("n_startup_jobs", "n_ei_candidates", "linear_forgetting"):
            minimum = 0 if key == "n_startup_jobs" else 1
            kwargs[key] = int(check_number(name, value, integer=True, minimum=minimum))
        elif key == "prior_weight":
            # 0 is allowed: NNI's own docstring example uses it.
            kwargs[key] = check_number(name, value, minimum=0)
        elif key == "gamma":
            kwargs[key] = check_number(name, value, minimum=0, maximum=1, exclusive=True)
        elif key == "nni_compatible":
            if not isinstance(value, bool):
                raise ConfigError(
                    f"must be true or false, got {value!r}", field=class_arg_field(name)
                )
            kwargs[key] = value
        else:
            close = difflib.get_close_matches(str(key), _KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown key; {hint}accepted: {', '.join(_KEYS)}",
                field=class_arg_field(name),
            )
    if kwargs.get("nni_compatible", False):
        return TpeArgs(**kwargs)
    return TpeArgs(**{**JOINT_DEFAULTS, **kwargs})


def _liar_type(name: str, value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str) and value.lower() in LIAR_TYPES:
        return value.lower()
    raise ConfigError(
        f"must be one of 'best', 'worst', 'mean' or null, got {value!r}",
        field=class_arg_field(name),
    )


class Liar:
    """The loss pretended for running trials: best, worst or mean of the losses seen so far.

    Lying makes concurrent suggestions spread out (paper §6.1): each running trial's
    values join the history with this loss before the next suggestion. With no real
    result yet the lie is 0.0 (NNI: every history entry is then the same lie anyway).
    """

    def __init__(self, kind: str) -> None:
        """``kind`` is one of `LIAR_TYPES`."""
        self.kind = kind
        self._best: float | None = None
        self._worst: float | None = None
        self._sum = 0.0
        self._n = 0

    def update(self, loss: float) -> None:
        """Take a real loss into account."""
        self._best = loss if self._best is None else min(self._best, loss)
        self._worst = loss if self._worst is None else max(self._worst, loss)
        self._sum += loss
        self._n += 1

    def lie(self) -> float:
        """The current fake loss."""
        if self._n == 0:
            return 0.0
        if self.kind == "best":
            return self._best if self._best is not None else 0.0
        if self.kind == "worst":
            return self._worst if self._worst is not None else 0.0
        return self._sum / self._n
