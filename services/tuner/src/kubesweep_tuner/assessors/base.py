"""The assessor extension point: the abstract `Assessor` every early-stopping rule implements.

The shape follows NNI's ``nni.assessor.Assessor``. The service calls `Assessor.assess_trial`
on every intermediate result of a running trial with the trial's whole history so far,
and `Assessor.trial_end` once when the trial finishes. A `AssessResult.BAD` verdict means
"stop this trial now": the service cancels it as ``EARLY_STOPPED``. Assessors hold only
what they were told, so the same calls in the same order give the same verdicts.

Assessors are built by `kubesweep_tuner.assessors.registry.create_assessor` from the
experiment's ``assessor.name`` and ``assessor.classArgs``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from kubesweep_tuner.algorithms.base import OptimizeMode, check_choice, metric_to_scalar

__all__ = ["AssessResult", "Assessor", "Metric"]

log = logging.getLogger(__name__)

Metric = float | dict[str, Any]


class AssessResult(StrEnum):
    """An assessor's verdict on a running trial (NNI's ``AssessResult.Good`` / ``Bad``)."""

    GOOD = "good"
    BAD = "bad"


class Assessor(ABC):
    """Base class of every early-stopping rule.

    Subclasses declare their classArgs as keyword-only ``__init__`` parameters and
    validate them with the `kubesweep_tuner.algorithms.base` ``check_*`` helpers (the
    registry renames the field to ``assessor.classArgs.<name>``). Histories may hold
    numbers or NNI metric dicts with a numeric ``default``.
    """

    def __init__(self, *, optimize_mode: str = "maximize") -> None:
        """Validate ``optimize_mode`` (NNI's assessors default to maximize)."""
        self.optimize_mode = OptimizeMode(
            check_choice("optimize_mode", optimize_mode, [m.value for m in OptimizeMode])
        )

    @property
    def maximize(self) -> bool:
        """Whether larger metrics are better."""
        return self.optimize_mode is OptimizeMode.MAXIMIZE

    def better(self, a: float, b: float) -> bool:
        """Whether metric ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    @staticmethod
    def scalars(trial_history: Sequence[Metric]) -> list[float]:
        """The history as numbers; entries that are not finite numbers are dropped (logged)."""
        out = []
        for item in trial_history:
            try:
                value = metric_to_scalar(item)
            except ValueError as exc:
                log.warning("ignoring an intermediate result: %s", exc)
                continue
            if math.isfinite(value):
                out.append(value)
        return out

    @abstractmethod
    def assess_trial(self, trial_id: str, trial_history: Sequence[Metric]) -> AssessResult:
        """Judge a running trial from all its intermediate results so far, oldest first.

        Called after each new intermediate result; the history only grows. Returns
        `AssessResult.GOOD` whenever there is not enough information to judge.
        """

    def trial_end(self, trial_id: str, success: bool) -> None:  # noqa: B027 - optional hook
        """Note that a trial finished; ``success`` is False for failed, killed or early-stopped.

        Called once per trial, possibly for a trial never assessed. The default does nothing.
        """
