"""Tables and progress for the terminal."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

TERMINAL_TRIALS = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}


def _metric(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


def compact_parameters(parameters: dict[str, Any]) -> str:
    """``C=780.4 gamma=0.001021 kernel=poly``: short enough for a table cell."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict):
            return "{" + compact_parameters(value) + "}"
        return json.dumps(value) if not isinstance(value, str) else value

    return " ".join(f"{key}={fmt(value)}" for key, value in parameters.items())


def _default(value: Any) -> Any:
    return value.get("default") if isinstance(value, dict) else value


def _duration(trial: dict[str, Any]) -> str:
    start = trial.get("started") or trial.get("launched")
    if not start:
        return ""
    end = trial.get("ended") or time.time()
    return f"{end - start:.1f}s"


def trials_table(trials: list[dict[str, Any]], title: str = "Trials") -> Table:
    table = Table(title=title)
    columns = ("#", "trial", "status", "default metric", "intermediate", "duration", "parameters")
    for column in columns:
        table.add_column(column, overflow="fold")
    for trial in trials:
        last = trial.get("last_intermediate")
        count = trial.get("intermediate_count", 0)
        intermediate = f"{count} (last {_metric(_default(last))})" if count else ""
        table.add_row(
            str(trial["seq"]),
            trial["id"],
            trial["status"],
            _metric(trial.get("default_metric")),
            intermediate,
            _duration(trial),
            json.dumps(trial["parameters"], separators=(",", ":")),
        )
    return table


def experiments_table(experiments: list[dict[str, Any]]) -> Table:
    table = Table(title="Experiments")
    for column in ("id", "name", "status", "platform", "trials", "best"):
        table.add_column(column)
    for exp in experiments:
        counts = exp.get("trial_counts", {})
        best = exp.get("best")
        table.add_row(
            exp["id"],
            exp["name"],
            exp["status"],
            str(exp.get("platform")),
            str(sum(counts.values())),
            _metric(best["value"]) if best else "",
        )
    return table


def top_trials(trials: list[dict[str, Any]], mode: str, n: int = 10) -> list[dict[str, Any]]:
    scored = [t for t in trials if t.get("default_metric") is not None]
    scored.sort(key=lambda t: t["default_metric"], reverse=mode == "maximize")
    return scored[:n]


def progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def pareto_table(exp: dict[str, Any]) -> Table:
    """A multi-objective experiment's Pareto front (``experiment show``'s ``pareto_front``)."""
    objectives = exp.get("objectives") or []
    table = Table(title=f"Pareto front of {exp['id']} ({len(exp.get('pareto_front', []))} trials)")
    table.add_column("trial")
    for objective in objectives:
        table.add_column(f"{objective['name']} ({objective['direction']})")
    table.add_column("parameters", overflow="fold")
    for point in exp.get("pareto_front", []):
        values = [_metric(point["values"].get(o["name"])) for o in objectives]
        table.add_row(point["trial_id"], *values, compact_parameters(point["parameters"]))
    return table
