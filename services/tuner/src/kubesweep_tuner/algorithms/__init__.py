"""Search algorithms (tuners): the `Tuner` extension point, the registry and the built-ins."""

from kubesweep_tuner.algorithms.base import (
    TRIAL_BUDGET,
    NoMoreTrials,
    NotReady,
    OptimizeMode,
    Tuner,
)
from kubesweep_tuner.algorithms.registry import available, create_tuner, register

__all__ = [
    "TRIAL_BUDGET",
    "NoMoreTrials",
    "NotReady",
    "OptimizeMode",
    "Tuner",
    "available",
    "create_tuner",
    "register",
]
