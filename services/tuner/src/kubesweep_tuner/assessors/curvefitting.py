"""Learning-curve extrapolation, after NNI 3.0's ``curvefitting_assessor.py`` (compact version).

From ``start_step`` on, and then every ``gap`` steps, the trial's curve is extrapolated to
step ``epoch_num``; the trial is BAD if the prediction is worse than ``threshold`` times
the best final result of the completed trials (maximize: ``pred < best * threshold``;
minimize: ``pred > best / threshold`` — both assume positive metrics, like NNI's
accuracy-style curves). Before any trial completed, it is GOOD.

Deviation, documented in docs/algorithms.md: NNI fits 12 curve families by least squares
and weights them with MCMC. Here three families are fitted, each by linear least squares
over a grid of its one non-linear parameter (deterministic, no convergence failures):

* pow3:  ``c - a * x**-alpha``
* exp3:  ``c - a * exp(-k * x)``
* log2:  ``a * log(x) + b``

and the predictions are averaged with weights ``1 / mse``. Fits whose prediction is not
finite are dropped; with none left the verdict is GOOD (NNI: "wait for more data").
Also unlike NNI, the completed best is taken from the ending trial's own history (NNI
used whichever trial was assessed last) and ``optimize_mode`` is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubesweep_tuner.algorithms.base import check_number
from kubesweep_tuner.assessors.base import Assessor, AssessResult, Metric
from kubesweep_tuner.assessors.registry import register

__all__ = ["CurvefittingAssessor", "predict"]

_ALPHAS = np.geomspace(0.05, 4.0, 48)
_RATES = np.geomspace(0.01, 3.0, 48)
_EPS = 1e-12


def _fit(x: np.ndarray, y: np.ndarray, f: np.ndarray, f_target: np.ndarray) -> tuple[float, float]:
    # ``y ~ c + b * f[k](x)`` for every row k of f at once (closed-form simple regression);
    # the best row's (mse, prediction at the target step).
    fc = f - f.mean(axis=1, keepdims=True)
    var = (fc**2).sum(axis=1)
    slope = np.divide(fc @ (y - y.mean()), var, out=np.zeros_like(var), where=var > _EPS)
    intercept = y.mean() - slope * f.mean(axis=1)
    mse = (((intercept[:, None] + slope[:, None] * f) - y) ** 2).mean(axis=1)
    k = int(np.argmin(mse))
    return float(mse[k]), float(intercept[k] + slope[k] * f_target[k])


def predict(history: Sequence[float], target: int) -> float | None:
    """The weighted-ensemble extrapolation of ``history`` (steps 1..n) to step ``target``."""
    y = np.asarray(history, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float)
    t = float(target)
    families = [
        _fit(x, y, -(x[None, :] ** -_ALPHAS[:, None]), -(t**-_ALPHAS)),  # pow3
        _fit(x, y, -np.exp(-_RATES[:, None] * x[None, :]), -np.exp(-_RATES * t)),  # exp3
        _fit(x, y, np.log(x)[None, :], np.log(np.array([t]))),  # log2
    ]
    fits = [(mse, pred) for mse, pred in families if np.isfinite(pred) and np.isfinite(mse)]
    if not fits:
        return None
    weights = np.array([1 / (mse + _EPS) for mse, _ in fits])
    return float(np.dot(weights, [pred for _, pred in fits]) / weights.sum())


@register("Curvefitting", "CurvefittingAssessor")
class CurvefittingAssessor(Assessor):
    """Stop trials whose extrapolated final result falls short of the best completed one."""

    def __init__(
        self,
        *,
        epoch_num: int,
        start_step: int = 6,
        threshold: float = 0.95,
        gap: int = 1,
        optimize_mode: str = "maximize",
    ) -> None:
        """Validate the classArgs; NNI's ranges and defaults (epoch_num is required)."""
        super().__init__(optimize_mode=optimize_mode)
        self.epoch_num = int(check_number("epoch_num", epoch_num, integer=True, minimum=1))
        self.start_step = int(
            check_number("start_step", start_step, integer=True, minimum=0, maximum=9999)
        )
        self.threshold = check_number(
            "threshold", threshold, minimum=0, maximum=9999, exclusive=True
        )
        self.gap = int(check_number("gap", gap, integer=True, minimum=1, maximum=9999))
        self._best: float | None = None
        self._last: dict[str, float] = {}
        self._judged_at: dict[str, int] = {}

    def assess_trial(self, trial_id: str, trial_history: Sequence[Metric]) -> AssessResult:
        """BAD if the curve extrapolated to ``epoch_num`` misses the completed best."""
        history = self.scalars(trial_history)
        if history:
            self._last[trial_id] = history[-1]
        step = len(history)
        if self._best is None or step < max(self.start_step, 2):
            return AssessResult.GOOD
        last = self._judged_at.get(trial_id)
        if last is not None and step - last < self.gap:
            return AssessResult.GOOD
        self._judged_at[trial_id] = step
        predicted = predict(history, max(self.epoch_num, step))
        if predicted is None:
            return AssessResult.GOOD
        if self.maximize:
            return (
                AssessResult.GOOD if predicted >= self._best * self.threshold else AssessResult.BAD
            )
        return AssessResult.GOOD if predicted <= self._best / self.threshold else AssessResult.BAD

    def trial_end(self, trial_id: str, success: bool) -> None:
        """A successful trial's last result may become the best completed result."""
        last = self._last.pop(trial_id, None)
        self._judged_at.pop(trial_id, None)
        if success and last is not None and (self._best is None or self.better(last, self._best)):
            self._best = last
