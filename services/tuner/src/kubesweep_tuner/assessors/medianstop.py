"""Median stopping, after NNI 3.0's ``medianstop_assessor.py``.

At step ``t`` (the history's length), a trial is BAD if its best result so far is worse
than the median, over the trials that completed successfully and reached step ``t``, of
their running averages at step ``t``. Before ``start_step``, or before any completed
trial reached step ``t``, it is GOOD. As in NNI the median is the lower middle element
when maximizing and the upper one when minimizing: with an even count, the one that
stops fewer trials. Only successful trials count as completed (an early-stopped trial
never sets the bar). NNI's quirk of recording a history only once ``start_step`` is
reached is irrelevant here: the full history arrives with every call.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubesweep_tuner.algorithms.base import check_number
from kubesweep_tuner.assessors.base import Assessor, AssessResult, Metric
from kubesweep_tuner.assessors.registry import register

__all__ = ["MedianstopAssessor"]


@register("Medianstop", "MedianstopAssessor")
class MedianstopAssessor(Assessor):
    """Stop trials whose best-so-far is worse than the completed trials' median running average."""

    def __init__(self, *, optimize_mode: str = "maximize", start_step: int = 0) -> None:
        """Validate the classArgs; NNI's defaults (maximize, start_step 0)."""
        super().__init__(optimize_mode=optimize_mode)
        self.start_step = int(check_number("start_step", start_step, integer=True, minimum=0))
        self._running: dict[str, list[float]] = {}
        self._completed_averages: dict[str, list[float]] = {}

    def assess_trial(self, trial_id: str, trial_history: Sequence[Metric]) -> AssessResult:
        """BAD if the best so far is worse than the median running average at this step."""
        history = self.scalars(trial_history)
        self._running[trial_id] = history
        step = len(history)
        if step == 0 or step < self.start_step:
            return AssessResult.GOOD
        averages = sorted(
            avg[step - 1] for avg in self._completed_averages.values() if len(avg) >= step
        )
        if not averages:
            return AssessResult.GOOD
        if self.maximize:
            median = averages[(len(averages) - 1) // 2]
            return AssessResult.BAD if max(history) < median else AssessResult.GOOD
        median = averages[len(averages) // 2]
        return AssessResult.BAD if min(history) > median else AssessResult.GOOD

    def trial_end(self, trial_id: str, success: bool) -> None:
        """A successful trial's running averages join the reference; others are forgotten."""
        history = self._running.pop(trial_id, None)
        if success and history:
            total, averages = 0.0, []
            for i, value in enumerate(history, start=1):
                total += value
                averages.append(total / i)
            self._completed_averages[trial_id] = averages
