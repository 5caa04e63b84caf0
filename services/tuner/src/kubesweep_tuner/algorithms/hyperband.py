"""Hyperband, after NNI 3.0's ``hyperband_advisor.py``, as a `Tuner` that may say `NotReady`.

With ``s_max = floor(log_eta(R))``, brackets ``s = s_max .. 0`` are run in turn, and the
cycle repeats for ever (the experiment's trial or time limit ends it, as in NNI). Bracket
``s`` starts ``n = ceil((s_max + 1) * eta**s / (s + 1))`` random configurations at budget
``r = R / eta**s``; rung ``i`` keeps the best ``floor(n / eta**i)`` by final metric and
reruns them at budget ``floor(r * eta**i)``. The budget reaches the trial as the integer
parameter ``TRIAL_BUDGET``. A promoted configuration is a new trial (NNI has no resume).

``exec_mode='parallelism'`` starts the next bracket whenever nothing is queued, so it
never waits; ``'serial'`` starts a bracket only after the previous one has proposed its
last rung, and raises `NotReady` meanwhile.

Differences from NNI: a rung is complete when each of its trials has a result or has
ended (NNI counts only ends and crashes if fewer than ``n_i`` results arrived: here the
best of those with results are promoted); within a rung configurations are distinct and
``n`` is capped at the size of a finite space; a search-space update abandons the
running brackets and restarts the schedule (their configurations lack the new
parameters); nested choices are supported.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.base import (
    TRIAL_BUDGET,
    NotReady,
    Tuner,
    check_choice,
    check_number,
)
from kubesweep_tuner.algorithms.nni_space import NniSpace, params_key
from kubesweep_tuner.algorithms.registry import register
from kubesweep_tuner.algorithms.support import loss_or_none

__all__ = ["HyperbandTuner"]

log = logging.getLogger(__name__)

_EPSILON = 1e-6  # NNI's guard against float error in log/ceil/floor


@dataclass
class _Rung:
    bracket: _Bracket
    index: int
    budget: int
    configs: list[dict[str, Any]]
    handed_out: dict[int, dict[str, Any]] = field(default_factory=dict)  # parameter id -> config
    losses: dict[int, float] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    promoted: bool = False

    def complete(self) -> bool:
        settled = all(pid in self.losses or pid in self.ended for pid in self.handed_out)
        return len(self.handed_out) == len(self.configs) and settled


@dataclass
class _Bracket:
    s: int
    n: int
    r: float
    rungs: list[_Rung] = field(default_factory=list)
    stopped: bool = False  # every trial of a rung failed

    def last_rung_created(self) -> bool:
        return self.stopped or len(self.rungs) > self.s


@register("Hyperband")
class HyperbandTuner(Tuner):
    """Hyperband over random configurations (NNI's advisor, as a tuner)."""

    budgeted = True

    def __init__(
        self,
        *,
        optimize_mode: str = "maximize",
        R: int = 60,  # noqa: N803 - NNI's classArg name
        eta: int = 3,
        exec_mode: str = "parallelism",
        seed: int | None = None,
    ) -> None:
        """Validate the classArgs; NNI's defaults (maximize, R=60, eta=3, parallelism)."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self.R = int(check_number("R", R, integer=True, minimum=1))
        self.eta = int(check_number("eta", eta, integer=True, minimum=2))
        self.exec_mode = check_choice("exec_mode", exec_mode, ["serial", "parallelism"])
        self.s_max = math.floor(math.log(self.R, self.eta) + _EPSILON)
        self._rng = np.random.default_rng(self.seed)
        self._space: NniSpace | None = None
        self._queue: deque[tuple[_Rung, dict[str, Any]]] = deque()
        self._current: _Bracket | None = None
        self._next_s = self.s_max
        self._trials: dict[int, _Rung] = {}

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Adopt the space and restart the bracket schedule."""
        if TRIAL_BUDGET in search_space:
            raise ConfigError(
                f"{TRIAL_BUDGET} is reserved: Hyperband passes the budget under that name",
                field=f"searchSpace.{TRIAL_BUDGET}",
            )
        self._space = NniSpace(search_space)
        self._queue.clear()
        self._current = None
        self._next_s = self.s_max
        self._trials.clear()  # results of abandoned brackets no longer promote anything

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """The next queued configuration with its ``TRIAL_BUDGET``; `NotReady` if serial waits."""
        if self._space is None:
            raise RuntimeError("update_search_space must be called before generate_parameters")
        if not self._queue:
            current = self._current
            if self.exec_mode == "serial" and current and not current.last_rung_created():
                raise NotReady("Hyperband waits for the results of the current rung")
            self._start_bracket(self._space)
        rung, config = self._queue.popleft()
        rung.handed_out[parameter_id] = config
        self._trials[parameter_id] = rung
        return {**config, TRIAL_BUDGET: rung.budget}

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        """Record the final metric of a rung member; promote when its rung is complete."""
        rung = self._trials.get(parameter_id)
        if rung is None:
            log.debug("ignoring a result for parameter id %s outside any bracket", parameter_id)
            return
        if parameter_id in rung.losses:
            return
        loss = loss_or_none(self, value)
        if loss is None:
            return
        if rung.promoted:
            log.info("result for parameter id %s arrived after its rung was promoted", parameter_id)
        ran = {k: v for k, v in (parameters or {}).items() if k != TRIAL_BUDGET}
        if ran and ran != rung.handed_out[parameter_id]:
            # The trial ran other parameters (a replay by an unseeded tuner): promote those.
            rung.handed_out[parameter_id] = ran
        rung.losses[parameter_id] = loss
        self._maybe_promote(rung)

    def trial_end(self, parameter_id: int, success: bool) -> None:
        """Count the trial as settled; a failed trial is simply not promoted."""
        rung = self._trials.get(parameter_id)
        if rung is not None:
            rung.ended.add(parameter_id)
            self._maybe_promote(rung)

    def _start_bracket(self, space: NniSpace) -> None:
        s = self._next_s
        self._next_s = self._next_s - 1 if self._next_s > 0 else self.s_max
        n = math.ceil((self.s_max + 1) * self.eta**s / (s + 1) - _EPSILON)
        if space.size is not None:
            n = min(n, space.size)  # the same configuration twice at one budget is waste
        bracket = _Bracket(s, n, self.R / self.eta**s)
        configs: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(n * 20):
            if len(configs) == n:
                break
            params = space.to_params(space.sample(self._rng))
            if params_key(params) not in seen:
                seen.add(params_key(params))
                configs.append(params)
        self._current = bracket
        self._add_rung(bracket, configs)
        log.debug("bracket s=%d started: %d configurations", s, len(configs))

    def _add_rung(self, bracket: _Bracket, configs: list[dict[str, Any]]) -> None:
        i = len(bracket.rungs)
        budget = math.floor(bracket.r * self.eta**i + _EPSILON)
        rung = _Rung(bracket, i, budget, configs)
        bracket.rungs.append(rung)
        self._queue.extend((rung, config) for config in configs)

    def _maybe_promote(self, rung: _Rung) -> None:
        bracket = rung.bracket
        if rung.promoted or not rung.complete() or bracket.last_rung_created():
            return
        rung.promoted = True
        keep = max(1, math.floor(bracket.n / self.eta ** (rung.index + 1) + _EPSILON))
        ranked = sorted(rung.losses, key=lambda pid: rung.losses[pid])[:keep]
        if not ranked:  # every trial of the rung failed: the bracket ends here
            log.info("bracket s=%d ends at rung %d: no results", bracket.s, rung.index)
            bracket.stopped = True
            return
        self._add_rung(bracket, [rung.handed_out[pid] for pid in ranked])
