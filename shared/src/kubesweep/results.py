"""Ranking trials by their default metric, the way NNI's UI and nnictl do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubesweep.records import TrialRecord


def optimize_mode(spec: dict[str, Any]) -> str:
    """The tuner's ``optimize_mode`` (NNI's default is minimize)."""
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
