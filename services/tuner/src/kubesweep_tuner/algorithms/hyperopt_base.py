"""`HyperoptTuner`: the machinery shared by tuners on hyperopt, after NNI's ``hyperopt_tuner.py``.

hyperopt runs as a suggestion library: each `generate_parameters` calls
``algo([tid], domain, trials, seed)`` on a `Trials` object that holds only completed
results. Unlike NNI's wrapper, trials may end before, after or without a result;
failed trials stop being lied about; duplicates are re-drawn; and results for
parameters this tuner never generated are accepted.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hyperopt import JOB_STATE_DONE, STATUS_OK, Domain, Trials, rand

from kubesweep_tuner.algorithms.base import (
    NoMoreTrials,
    Tuner,
    check_bool,
    check_choice,
)
from kubesweep_tuner.algorithms.hyperopt_space import HyperoptSpace

__all__ = ["Algorithm", "HyperoptTuner"]

log = logging.getLogger(__name__)

Algorithm = Callable[[list[int], Domain, Trials, int], list[dict[str, Any]]]

# NNI legacy names (min/max) and NNI 3.0 names (best/worst), both over the loss.
_LIARS = {"min": "min", "best": "min", "max": "max", "worst": "max", "mean": "mean"}
_MAX_REDRAWS = 20
_ENUMERATE_LIMIT = 10_000


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _no_objective(_: Any) -> float:
    raise NotImplementedError("kubesweep evaluates trials outside hyperopt")


@dataclass
class _Generated:
    tid: int
    params: dict[str, Any]
    vals: dict[str, Any] | None  # None when the current space no longer contains it


class HyperoptTuner(Tuner):
    """Shared machinery for tuners driven by a hyperopt suggest function.

    ``parallel_optimize`` enables the constant liar: before each suggestion every
    running trial is added to a copy of the history with a fake loss (the min, max or
    mean loss observed so far), so concurrent suggestions spread out.
    """

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        parallel_optimize: bool = False,
        constant_liar_type: str = "min",
    ) -> None:
        """Validate the classArgs; see the class docstring for their meaning."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self._parallel = check_bool("parallel_optimize", parallel_optimize)
        self._liar = _LIARS[check_choice("constant_liar_type", constant_liar_type, _LIARS)]
        self._rng = np.random.default_rng(self.seed)
        self._space: HyperoptSpace | None = None
        self._domain: Domain | None = None
        self._trials = Trials()
        self._next_tid = 0
        self._generated: dict[int, _Generated] = {}
        self._running: dict[int, None] = {}  # insertion-ordered set of parameter ids
        self._observed: set[int] = set()
        self._history: list[tuple[int, dict[str, Any], float]] = []  # (tid, params, loss)
        self._seen: set[str] = set()

    @abc.abstractmethod
    def _algorithm(self) -> Algorithm:
        """The hyperopt suggest function, called as ``algo([tid], domain, trials, seed)``."""

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Build the hyperopt domain and re-enter every result that fits the new space."""
        space = HyperoptSpace(search_space)
        self._space, self._domain = space, Domain(_no_objective, space.expr)
        self._trials, self._seen = Trials(), set()
        for gen in self._generated.values():
            gen.vals = self._vals_or_none(gen.params)
            if gen.vals is not None:
                self._seen.add(_key(space.to_params(gen.vals)))
        for tid, params, loss in self._history:
            vals = self._vals_or_none(params)
            if vals is not None:
                self._seen.add(_key(space.to_params(vals)))
                self._insert(tid, vals, loss)

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """Suggest a configuration not proposed before (re-drawn at random on a clash)."""
        space = self._require_space()
        if space.size is not None and len(self._seen) >= space.size:
            raise NoMoreTrials(f"all {space.size} configurations of the search space were tried")
        tid = self._new_tid()
        trials = self._trials_with_lies()
        vals = self._draw(self._algorithm(), tid, trials)
        for _ in range(_MAX_REDRAWS):
            if _key(space.to_params(vals)) not in self._seen:
                break
            vals = self._draw(rand.suggest, tid, trials)
        params = space.to_params(vals)
        if _key(params) in self._seen and space.size is not None:
            if space.size <= _ENUMERATE_LIMIT:
                vals = self._pick_unseen(space)
                params = space.to_params(vals)
            else:
                log.debug("accepting a duplicate suggestion after %d re-draws", _MAX_REDRAWS)
        self._seen.add(_key(params))
        self._generated[parameter_id] = _Generated(tid, params, vals)
        self._running[parameter_id] = None
        return copy.deepcopy(params)

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        """Record a final result; repeats are ignored, unknown parameter ids accepted."""
        if parameter_id in self._observed:
            log.debug("ignoring a repeated result for parameter id %s", parameter_id)
            return
        self._observed.add(parameter_id)
        self._running.pop(parameter_id, None)
        gen = self._generated.get(parameter_id)
        if gen is not None and (not parameters or parameters == gen.params):
            self._record(gen.tid, gen.params, value)
        else:
            self._record(self._new_tid(), parameters, value)

    def trial_end(self, parameter_id: int, success: bool) -> None:
        """Stop counting the trial as running; a failed trial contributes no loss."""
        self._running.pop(parameter_id, None)
        if not success and parameter_id not in self._observed:
            log.debug("parameter id %s ended without a result", parameter_id)

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Add earlier results (NNI format); records that do not fit are skipped with a warning."""
        for record in data:
            if not isinstance(record, dict):
                log.warning("ignoring an imported record that is not an object: %r", record)
                continue
            value = record.get("value")
            if isinstance(value, str):
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(value)
            self._record(self._new_tid(), record.get("parameter"), value)  # type: ignore[arg-type]

    def _record(self, tid: int, params: dict[str, Any], value: float | dict[str, Any]) -> None:
        try:
            loss = self.metric_to_loss(value)
        except ValueError as exc:
            log.warning("ignoring a result: %s", exc)
            return
        if not math.isfinite(loss):
            log.warning("ignoring non-finite metric %r for %s", value, params)
            return
        # Kept even if it does not fit the current space: a later space may include it.
        self._history.append((tid, params, loss))
        if self._space is not None:
            vals = self._vals_or_none(params)
            if vals is not None:
                self._seen.add(_key(self._space.to_params(vals)))
                self._insert(tid, vals, loss)

    def _vals_or_none(self, params: Any) -> dict[str, Any] | None:
        assert self._space is not None
        try:
            return self._space.to_vals(params)
        except ValueError as exc:
            log.warning("parameters %r are not in the search space: %s", params, exc)
            return None

    def _doc(self, tid: int, vals: Mapping[str, Any], loss: float) -> dict[str, Any]:
        assert self._domain is not None
        labels = self._domain.params
        misc = {
            "tid": tid,
            "cmd": self._domain.cmd,
            "workdir": self._domain.workdir,
            "idxs": {k: [tid] if k in vals else [] for k in labels},
            "vals": {k: [vals[k]] if k in vals else [] for k in labels},
        }
        doc: dict[str, Any] = self._trials.new_trial_docs(
            [tid], [None], [{"status": STATUS_OK, "loss": loss}], [misc]
        )[0]
        doc["state"] = JOB_STATE_DONE
        return doc

    def _insert(self, tid: int, vals: Mapping[str, Any], loss: float) -> None:
        # The private insert skips hyperopt's per-document BSON round trip.
        self._trials._insert_trial_docs([self._doc(tid, vals, loss)])
        self._trials.refresh()

    def _trials_with_lies(self) -> Trials:
        running = [g for pid in self._running if (g := self._generated[pid]).vals is not None]
        losses = [loss for _, _, loss in self._history]
        if not (self._parallel and running and losses):
            return self._trials
        if self._liar == "min":
            lie = min(losses)
        elif self._liar == "max":
            lie = max(losses)
        else:
            lie = sum(losses) / len(losses)
        lied = Trials()
        lied._insert_trial_docs(
            [*self._trials.trials, *(self._doc(g.tid, g.vals or {}, lie) for g in running)]
        )
        lied.refresh()
        return lied

    def _draw(self, algorithm: Algorithm, tid: int, trials: Trials) -> dict[str, Any]:
        assert self._domain is not None
        seed = int(self._rng.integers(2**31 - 1))
        docs = algorithm([tid], self._domain, trials, seed)
        raw: dict[str, list[Any]] = docs[0]["misc"]["vals"]
        return {k: v[0].item() if hasattr(v[0], "item") else v[0] for k, v in raw.items() if v}

    def _pick_unseen(self, space: HyperoptSpace) -> dict[str, Any]:
        unseen = [v for v in space.enumerate_vals() if _key(space.to_params(v)) not in self._seen]
        return unseen[int(self._rng.integers(len(unseen)))]

    def _new_tid(self) -> int:
        self._next_tid += 1
        return self._next_tid - 1

    def _require_space(self) -> HyperoptSpace:
        if self._space is None:
            raise RuntimeError("update_search_space must be called before generate_parameters")
        return self._space
