"""`TpeTuner`: kubesweep's TPE, with NNI 3.0's (``tpe_tuner.TpeTuner``) as a mode.

By default the suggestion is the joint TPE of `joint` (one kernel per observation over
all parameters of a group); with ``tpe_args: {nni_compatible: true}`` it is NNI's own
(see `estimator`), suggestion for suggestion. This class keeps the history (per
parameter for NNI's mode, per group for the joint one) and fixes what NNI gets wrong
around it:

* a result may arrive before or after `trial_end`, twice, or for a parameter id this
  tuner never generated (NNI raises ``KeyError`` then: microsoft/nni#5798, #5739);
* a failed trial contributes nothing (as NNI) and stops being lied about;
* a configuration already proposed or evaluated is re-drawn (NNI repeats it), and a
  finite space ends with `NoMoreTrials`;
* imported results also feed the liar (NNI lies 0.0 after an import);
* a search-space update keeps every result that fits the new space.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubesweep_tuner.algorithms.base import NoMoreTrials, Tuner
from kubesweep_tuner.algorithms.nni_space import Internal, Key, NniSpace, ParamSpec, params_key
from kubesweep_tuner.algorithms.registry import register
from kubesweep_tuner.algorithms.support import decode_import, loss_or_none
from kubesweep_tuner.algorithms.tpe.args import Liar, parse_tpe_args
from kubesweep_tuner.algorithms.tpe.estimator import Floats, random_parameter, suggest_parameter
from kubesweep_tuner.algorithms.tpe.joint import group_key, suggest_group

__all__ = ["TpeTuner"]

log = logging.getLogger(__name__)

_MAX_REDRAWS = 10  # TPE re-draws, then as many prior draws, before enumerating
_ENUMERATE_LIMIT = 10_000
_EMPTY: tuple[Floats, Floats] = (np.empty(0), np.empty(0))


@dataclass
class _Record:
    params: Any  # as reported: may not fit the current space
    base: Internal | None  # base-space values in the current space; None if it does not fit
    loss: float


@dataclass
class _Generated:
    params: dict[str, Any]
    base: Internal | None  # the raw draw (NNI keeps it, not the rounded value)


@register("TPE")
class TpeTuner(Tuner):
    """Tree-structured Parzen Estimator: joint by default, NNI 3.0's with ``nni_compatible``.

    classArgs as NNI's: ``optimize_mode``, ``seed`` and ``tpe_args`` with
    ``constant_liar_type`` (best | worst | mean | null), ``n_startup_jobs``,
    ``n_ei_candidates`` (24), ``linear_forgetting`` (25), ``prior_weight`` (1.0),
    ``gamma`` and kubesweep's ``nni_compatible`` (false). Defaults of the joint mode:
    liar worst, 10 startup jobs, gamma 0.1 (below = ceil(gamma N), capped by
    linear_forgetting); of NNI's mode: liar best, 20, gamma 0.25 (ceil(gamma sqrt N)).
    """

    def __init__(
        self,
        *,
        optimize_mode: str = "minimize",
        seed: int | None = None,
        tpe_args: dict[str, Any] | None = None,
    ) -> None:
        """Validate the classArgs; see the class docstring for their meaning."""
        super().__init__(optimize_mode=optimize_mode, seed=seed)
        self.args = parse_tpe_args(tpe_args)
        kind = self.args.constant_liar_type
        self._liar = Liar(kind) if kind is not None else None
        # As NNI: without a seed, draw one, so the generator is a PCG64 either way.
        rng_seed = seed if seed is not None else int(np.random.default_rng().integers(2**31))
        self._rng = np.random.default_rng(rng_seed)
        self._space: NniSpace | None = None
        self._specs: dict[Key, ParamSpec] = {}
        self._generated: dict[int, _Generated] = {}
        self._running: dict[int, None] = {}  # insertion-ordered set: lies follow NNI's order
        self._observed: set[int] = set()
        self._records: list[_Record] = []
        self._values: dict[Key, list[float]] = defaultdict(list)
        self._losses: dict[Key, list[float]] = defaultdict(list)
        self._arrays: dict[Key, tuple[Floats, Floats]] = {}  # cache of the two lists above
        # Joint mode: parameters grouped by activation condition, one row per observation.
        self._groups: dict[Key, list[ParamSpec]] = {}
        self._rows: dict[Key, list[list[float]]] = defaultdict(list)
        self._row_losses: dict[Key, list[float]] = defaultdict(list)
        self._row_arrays: dict[Key, tuple[Floats, Floats]] = {}
        self._seen: set[str] = set()

    # -- Tuner interface -----------------------------------------------------------------

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Adopt a space; results and running trials that fit it are kept."""
        space = NniSpace(search_space)
        old_specs, self._space = self._specs, space
        self._specs = {spec.key: spec for spec in space.specs}
        self._groups = {}
        for spec in space.specs:
            self._groups.setdefault(group_key(spec), []).append(spec)
        self._values.clear()
        self._losses.clear()
        self._arrays.clear()
        self._rows.clear()
        self._row_losses.clear()
        self._row_arrays.clear()
        self._seen.clear()
        for gen in self._generated.values():
            fitted = self._fit(gen.params, gen.base, old_specs)
            gen.base = fitted[0] if fitted else None
            if fitted:
                self._seen.add(fitted[1])
        for record in self._records:
            fitted = self._fit(record.params, record.base, old_specs)
            record.base = fitted[0] if fitted else None
            if fitted:
                self._seen.add(fitted[1])
                self._add(fitted[0], record.loss)

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """NNI's TPE suggestion; a configuration seen before is re-drawn."""
        space = self._require_space()
        if space.size is not None and len(self._seen) >= space.size:
            raise NoMoreTrials(f"all {space.size} configurations of the search space were tried")
        history = (
            self._history_with_lies()
            if self.args.nni_compatible
            else self._group_history_with_lies()
        )
        base = self._suggest(space, history)
        params = self._to_params(base)
        for attempt in range(2 * _MAX_REDRAWS):
            if params_key(params) not in self._seen:
                break
            # TPE first (its candidates differ on each draw), then the prior.
            base = self._suggest(space, history if attempt < _MAX_REDRAWS else None)
            params = self._to_params(base)
        else:
            if space.size is not None and space.size <= _ENUMERATE_LIMIT:
                base, params = self._pick_unseen(space)
            else:
                log.debug("accepting a duplicate suggestion after %d re-draws", 2 * _MAX_REDRAWS)
        self._seen.add(params_key(params))
        self._generated[parameter_id] = _Generated(params, base)
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
            self._record(gen.params, gen.base, value)
        else:
            self._record(parameters, None, value)

    def trial_end(self, parameter_id: int, success: bool) -> None:
        """Stop lying about the trial; a failed one contributes no loss (as NNI)."""
        self._running.pop(parameter_id, None)

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Add earlier results (NNI format); records that do not fit are skipped with a warning."""
        for record in data:
            decoded = decode_import(record)
            if decoded is not None:
                self._record(decoded[0], None, decoded[1])

    # -- history -------------------------------------------------------------------------

    def _record(self, params: Any, base: Internal | None, value: Any) -> None:
        loss = loss_or_none(self, value)
        if loss is None:
            return
        if self._liar is not None:
            self._liar.update(loss)
        record = _Record(params, None, loss)
        self._records.append(record)  # kept even if it does not fit: a later space may
        if self._space is None:
            return
        fitted = (base, params_key(params)) if base is not None else self._fit(params, None, {})
        if fitted is not None:
            record.base = fitted[0]
            self._seen.add(fitted[1])
            self._add(fitted[0], loss)

    def _add(self, base: Internal, loss: float) -> None:
        if not self.args.nni_compatible:
            for group, row in self._group_rows(base):
                self._rows[group].append(row)
                self._row_losses[group].append(loss)
                self._row_arrays.pop(group, None)
            return
        for key, x in base.items():
            self._values[key].append(float(x))
            self._losses[key].append(loss)
            self._arrays.pop(key, None)

    def _group_rows(self, base: Internal) -> list[tuple[Key, list[float]]]:
        """The rows ``base`` adds: one per group active in it."""
        return [
            (group, [float(base[spec.key]) for spec in specs])
            for group, specs in self._groups.items()
            if all(spec.key in base for spec in specs)
        ]

    def _group_history_with_lies(self) -> dict[Key, tuple[Floats, Floats]]:
        history: dict[Key, tuple[Floats, Floats]] = {}
        for group, specs in self._groups.items():
            arrays = self._row_arrays.get(group)
            if arrays is None:
                rows = self._rows.get(group, [])
                matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(specs))
                arrays = (matrix, np.asarray(self._row_losses.get(group, []), dtype=np.float64))
                self._row_arrays[group] = arrays
            history[group] = arrays
        if self._liar is None or not self._running:
            return history
        lie = self._liar.lie()
        extra: dict[Key, list[list[float]]] = defaultdict(list)
        for pid in self._running:
            for group, row in self._group_rows(self._generated[pid].base or {}):
                extra[group].append(row)
        for group, rows in extra.items():
            matrix, losses = history[group]
            history[group] = (
                np.vstack([matrix, np.asarray(rows)]),
                np.append(losses, np.full(len(rows), lie)),
            )
        return history

    def _history(self, key: Key) -> tuple[Floats, Floats]:
        if key not in self._values:
            return _EMPTY
        arrays = self._arrays.get(key)
        if arrays is None:
            arrays = (np.asarray(self._values[key]), np.asarray(self._losses[key]))
            self._arrays[key] = arrays
        return arrays

    def _history_with_lies(self) -> dict[Key, tuple[Floats, Floats]]:
        history = {key: self._history(key) for key in self._specs}
        if self._liar is None or not self._running:
            return history
        lie = self._liar.lie()
        extra: dict[Key, list[float]] = defaultdict(list)
        for pid in self._running:
            for key, x in (self._generated[pid].base or {}).items():
                extra[key].append(float(x))
        for key, xs in extra.items():
            values, losses = history[key]
            history[key] = (np.append(values, xs), np.append(losses, np.full(len(xs), lie)))
        return history

    def _fit(
        self, params: Any, base: Internal | None, old_specs: dict[Key, ParamSpec]
    ) -> tuple[Internal, str] | None:
        """``params`` in base space of the current space and their canonical key, or None.

        A raw draw in ``base`` is kept for every parameter whose spec did not change.
        """
        assert self._space is not None
        try:
            final = self._space.to_internal(params)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("parameters %r are not in the search space: %s", params, exc)
            return None
        out: Internal = {}
        for key, x in final.items():
            spec = self._specs[key]
            if base is not None and key in base and old_specs.get(key) == spec:
                out[key] = base[key]
            elif spec.categorical or not spec.log:
                out[key] = x
            elif x > 0:
                out[key] = math.log(x)
            else:  # qlognormal rounded down to 0: any raw draw below log(q/2) gives that
                out[key] = math.log((spec.q or 1.0) / 2)
        return out, params_key(self._space.to_params(final))

    # -- suggestion ----------------------------------------------------------------------

    def _suggest(
        self, space: NniSpace, history: dict[Key, tuple[Floats, Floats]] | None
    ) -> Internal:
        """One configuration in base space; from the prior alone when ``history`` is None."""
        base: Internal = {}
        if history is not None and not self.args.nni_compatible:
            for group, specs in self._groups.items():
                if not specs[0].active(base):
                    continue
                observed, losses = history[group]
                drawn = suggest_group(self.args, self._rng, specs, observed, losses)
                base.update(zip((spec.key for spec in specs), drawn, strict=True))
            return base
        for spec in space.specs:
            if not spec.active(base):
                continue
            if history is None:
                base[spec.key] = random_parameter(self._rng, spec)
            else:
                values, losses = history[spec.key]
                base[spec.key] = suggest_parameter(self.args, self._rng, spec, values, losses)
        return base

    def _to_params(self, base: Internal) -> dict[str, Any]:
        assert self._space is not None
        final: Internal = {}
        for key, x in base.items():
            spec = self._specs[key]
            if spec.categorical:
                final[key] = x
            elif spec.normal:
                final[key] = spec.finalize(x)
            else:  # exp(log(high)) may exceed high by an ulp; keep values inside the range
                low, high = float(spec.values[0]), float(spec.values[1])
                final[key] = min(max(spec.finalize(x), low), high)
        return self._space.to_params(final)

    def _pick_unseen(self, space: NniSpace) -> tuple[Internal, dict[str, Any]]:
        unseen = [c for c in space.enumerate() if params_key(space.to_params(c)) not in self._seen]
        choice = unseen[int(self._rng.integers(len(unseen)))]
        return choice, space.to_params(choice)  # finite: only option indexes, no base values

    def _require_space(self) -> NniSpace:
        if self._space is None:
            raise RuntimeError("update_search_space must be called before generate_parameters")
        return self._space
