"""Earlier results to warm-start a tuner: NNI's and kubesweep's export formats.

Accepted files (``kubesweep experiment import -f``, ``kubesweep run/create --import``):

- JSON: ``[{"parameter": {...}, "value": <number | metric dict | JSON string>,
  "trialJobId": ...}, ...]`` — NNI's ``nnictl experiment export -t json`` and
  ``kubesweep experiment export``;
- CSV: one column per top-level parameter plus either ``reward`` (NNI's and kubesweep's
  ``-t csv`` for numeric metrics) or one column per key of a metric dict (NNI's CSV for
  dict metrics, e.g. ``default``, ``accuracy``); ``trialJobId`` is ignored. A cell is read
  as JSON, else as a Python literal (NNI writes nested choices with ``str(dict)``), else
  as text; an empty cell is an absent parameter.

`clean_rows` is the one validation every entry point applies before results reach a tuner.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from kubesweep.errors import ConfigError
from kubesweep.records import default_metric

__all__ = ["clean_rows", "is_json", "load_results_file", "parse_results"]

_IGNORED_COLUMNS = ("trialJobId", "id", "trial_id")


def read_text(path: Path) -> str:
    """The file's text; `ConfigError` naming ``filename`` if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", field="filename") from exc


def is_json(text: str) -> bool:
    """Whether results text is JSON (else it is read as CSV)."""
    return text.lstrip().startswith(("[", "{"))


def load_results_file(path: Path, parameter_names: Collection[str]) -> list[dict[str, Any]]:
    """Read and validate a JSON or CSV results file (see the module docstring)."""
    return parse_results(read_text(path), parameter_names, source=str(path))


def parse_results(
    text: str, parameter_names: Collection[str], *, source: str = "<results>"
) -> list[dict[str, Any]]:
    """Rows ``{parameter, value}`` from JSON or CSV text; `ConfigError` names the bad row."""
    if is_json(text):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                field=source,
            ) from exc
        return clean_rows(body)
    return clean_rows(_csv_rows(text, parameter_names, source))


def _csv_rows(text: str, parameter_names: Collection[str], source: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    if not columns:
        raise ConfigError("the CSV file has no header row", field=source)
    params = [c for c in columns if c in parameter_names]
    metrics = [c for c in columns if c not in parameter_names and c not in _IGNORED_COLUMNS]
    if not params:
        raise ConfigError(
            f"no column is a parameter of the search space ({', '.join(sorted(parameter_names))})",
            field=source,
        )
    if not metrics:
        raise ConfigError(
            "no metric column: expected 'reward' or the metric dict's keys (e.g. 'default')",
            field=source,
        )
    rows = []
    for line in reader:
        parameter = {c: _cell(line[c]) for c in params if line.get(c) not in (None, "")}
        if "reward" in metrics:
            value: Any = _cell(line["reward"] or "")
        else:
            value = {c: _cell(line[c]) for c in metrics if line.get(c) not in (None, "")}
        rows.append({"parameter": parameter, "value": value})
    return rows


def _cell(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def clean_rows(body: Any) -> list[dict[str, Any]]:
    """Validated ``[{parameter, value}]``: a JSON-string value is decoded, and the value
    must be a finite number or a dict with a numeric ``default``."""
    if not isinstance(body, list):
        raise ConfigError("must be a list of {parameter, value} objects", field="body")
    cleaned = []
    for index, item in enumerate(body):
        where = f"body[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("parameter"), dict):
            raise ConfigError("needs a 'parameter' object", field=where)
        value = item.get("value")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError("'value' is not a number", field=f"{where}.value") from None
        metric = default_metric(value)
        if metric is None or not math.isfinite(metric):
            raise ConfigError(
                "'value' must be a number or a dict with a numeric 'default'",
                field=f"{where}.value",
            )
        cleaned.append({"parameter": item["parameter"], "value": value})
    return cleaned
