"""Asynchronous successive halving (ASHA, Li et al. 2020) as an assessor.

Rungs sit at steps ``min_budget * reduction_factor**k`` (below ``max_budget`` when
given). When a trial first reaches a rung, its latest result is compared with the
results every earlier trial had at that rung: it continues only if it is within the
top ``1 / reduction_factor`` of them (at or above their ``1 - 1/reduction_factor``
quantile, as Ray Tune's ASHA computes it), and is then recorded at the rung. The first
trial at a rung always continues; a rung never waits for more trials, which is what
makes the halving asynchronous. Between rungs a trial is GOOD.

Peers: Ray Tune ``ASHAScheduler`` (``grace_period``, ``reduction_factor``, ``max_t``),
Optuna ``SuccessiveHalvingPruner``; Katib lacks it (katib#1582).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.base import check_number, class_arg_field
from kubesweep_tuner.assessors.base import Assessor, AssessResult, Metric
from kubesweep_tuner.assessors.registry import register

__all__ = ["AshaAssessor"]


@register("ASHA", "AshaAssessor", "SuccessiveHalving")
class AshaAssessor(Assessor):
    """Stop a trial at a rung unless it is in the top 1/eta of the trials that reached it."""

    def __init__(
        self,
        *,
        optimize_mode: str = "maximize",
        min_budget: int | None = None,
        grace_period: int | None = None,
        reduction_factor: float | None = None,
        eta: float | None = None,
        max_budget: int | None = None,
    ) -> None:
        """Validate the classArgs; ``grace_period`` and ``eta`` are aliases (Ray's and NNI's)."""
        super().__init__(optimize_mode=optimize_mode)
        self.min_budget = int(
            check_number(
                *_one("min_budget", min_budget, "grace_period", grace_period, 1),
                integer=True,
                minimum=1,
            )
        )
        self.reduction_factor = check_number(
            *_one("reduction_factor", reduction_factor, "eta", eta, 3), minimum=1, exclusive=True
        )
        self.max_budget: int | None = None
        if max_budget is not None:
            self.max_budget = int(
                check_number("max_budget", max_budget, integer=True, minimum=self.min_budget)
            )
        self._recorded: dict[int, dict[str, float]] = {}  # rung step -> trial -> value
        self._reached: dict[str, int] = {}  # trial -> highest rung step already judged

    def rungs(self, up_to: int) -> list[int]:
        """The rung steps not above ``up_to`` (and below ``max_budget``, the final step)."""
        out, step = [], float(self.min_budget)
        while step <= up_to and (self.max_budget is None or step < self.max_budget):
            out.append(round(step))
            step *= self.reduction_factor
        return out

    def assess_trial(self, trial_id: str, trial_history: Sequence[Metric]) -> AssessResult:
        """Judge the trial at each rung it reached since the last call (highest first)."""
        history = self.scalars(trial_history)
        judged = self._reached.get(trial_id, 0)
        fresh = [r for r in self.rungs(len(history)) if r > judged]
        if not fresh:
            return AssessResult.GOOD
        self._reached[trial_id] = fresh[-1]
        verdict = AssessResult.GOOD
        for rung in fresh:  # several at once only if results were skipped or batched
            value = history[rung - 1]
            recorded = self._recorded.setdefault(rung, {})
            if recorded and not self._in_top(value, list(recorded.values())):
                verdict = AssessResult.BAD
            recorded[trial_id] = value
        return verdict

    def _in_top(self, value: float, others: list[float]) -> bool:
        keep = 1 / self.reduction_factor
        if self.maximize:
            return value >= float(np.quantile(others, 1 - keep))
        return value <= float(np.quantile(others, keep))


def _one(
    name: str, value: object, alias: str, alias_value: object, default: float
) -> tuple[str, object]:
    if value is not None and alias_value is not None:
        raise ConfigError(f"give either {name} or {alias}, not both", field=class_arg_field(alias))
    if alias_value is not None:
        return alias, alias_value
    return name, default if value is None else value
