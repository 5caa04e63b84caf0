"""Ranking trials by their default metric, the way NNI's UI and nnictl do, and the Pareto
front of a multi-objective experiment."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubesweep.config.extension import Objective, objectives_of
from kubesweep.records import TrialRecord


def optimize_mode(spec: dict[str, Any]) -> str:
    """The direction trials are ranked in: the first objective's, else the tuner's
    ``optimize_mode`` (NNI's default is minimize)."""
    objectives = objectives_of(spec.get("extension"))
    if objectives:
        return objectives[0].direction
    class_args = (spec.get("tuner") or {}).get("class_args") or {}
    mode = str(class_args.get("optimize_mode", "minimize"))
    return mode if mode in ("maximize", "minimize") else "minimize"


def ranked(trials: Iterable[TrialRecord], mode: str) -> list[TrialRecord]:
    """Trials with a final default metric, best first."""
    scored = [t for t in trials if t.default_metric is not None]
    return sorted(scored, key=lambda t: t.default_metric or 0.0, reverse=mode == "maximize")


def best(trials: Iterable[TrialRecord], mode: str) -> TrialRecord | None:
    top = ranked(trials, mode)
    return top[0] if top else None


def objective_values(value: Any, objectives: Sequence[Objective]) -> list[float] | None:
    """The objectives' values in a final metric, in the objectives' order.

    A plain number stands for a single objective. None when an objective is missing
    or not a finite number (such a trial takes no part in the front).
    """
    if not isinstance(value, Mapping):
        if len(objectives) == 1 and _finite(value):
            return [float(value)]
        return None
    out = []
    for objective in objectives:
        item = value.get(objective.name)
        if not _finite(item):
            return None
        out.append(float(item))  # type: ignore[arg-type]  # checked by _finite
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether loss vector ``a`` is no worse than ``b`` everywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_indices(losses: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated loss vectors (all minimised); equal vectors all stay."""
    # In lexicographic order a dominator comes first, and the front kept so far
    # dominates whatever an earlier dropped point did: one pass against the front.
    order = sorted(range(len(losses)), key=lambda i: tuple(losses[i]))
    front: list[int] = []
    for i in order:
        if not any(dominates(losses[j], losses[i]) for j in front):
            front.append(i)
    return sorted(front)


def pareto_front(
    trials: Iterable[TrialRecord], objectives: Sequence[Objective]
) -> list[dict[str, Any]]:
    """The trials no other trial beats on every objective, by the first objective's value.

    Each entry: ``trial_id``, ``parameters`` and ``values`` (objective name -> value).
    """
    scored: list[tuple[TrialRecord, list[float]]] = []
    for trial in trials:
        values = objective_values(trial.final, objectives)
        if values is not None:
            scored.append((trial, values))
    signs = [-1.0 if o.direction == "maximize" else 1.0 for o in objectives]
    losses = [[s * v for s, v in zip(signs, values, strict=True)] for _, values in scored]
    front = [scored[i] for i in pareto_indices(losses)]
    front.sort(key=lambda item: signs[0] * item[1][0])
    return [
        {
            "trial_id": trial.id,
            "parameters": trial.parameters,
            "values": {o.name: v for o, v in zip(objectives, values, strict=True)},
        }
        for trial, values in front
    ]
