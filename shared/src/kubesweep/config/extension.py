"""The ``kubesweep:`` extension block: settings NNI's schema has no place for.

Its ``pod``, ``roles`` and ``job`` sections belong to the Kubeflow platform (validated
there); ``objectives`` is read here: the named objectives of a multi-objective experiment
and their directions::

    kubesweep:
      objectives:
        - {name: accuracy, direction: maximize}
        - {name: latency, direction: minimize}

Each trial then reports a final metric dict holding every objective by name (plus NNI's
``default`` key, which an objective may also be named). Single-objective tuners optimise
the first objective; ``tuner.classArgs.optimize_mode`` may be left out, or must agree
with the first objective's direction.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from kubesweep.config.reader import Section, show
from kubesweep.errors import ConfigError

__all__ = ["Objective", "objectives_of", "read_extension"]

DIRECTIONS = ("maximize", "minimize")
_KNOWN_KEYS = ("objectives", "pod", "roles", "job")


class Objective(BaseModel):
    """One named objective of a multi-objective experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    direction: Literal["maximize", "minimize"]


def read_extension(root: Section, tuner_class_args: Mapping[str, Any]) -> dict[str, Any]:
    """The ``kubesweep:`` block as plain JSON data, with ``objectives`` validated.

    ``tuner_class_args`` is checked against the first objective's direction.
    """
    data = root.get_json("kubesweep")
    sec = root.section("kubesweep")
    if sec is None:
        return data
    for key in data:
        if key in _KNOWN_KEYS:
            continue
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1, cutoff=0.75)
        if close:  # other keys stay free-form for extensions that read them
            raise sec.error(key, f"unknown key; did you mean {close[0]!r}?")
    if "objectives" in data:
        found = _objectives(data["objectives"], sec.field("objectives"), sec.line_of("objectives"))
        mode = tuner_class_args.get("optimize_mode")
        if mode is not None and mode != found[0].direction:
            raise ConfigError(
                f"is {show(mode)} but the first objective ({found[0].name!r}) is to "
                f"{found[0].direction}; single-objective tuners optimise the first objective, "
                "so drop optimize_mode or make the two agree",
                field="tuner.classArgs.optimize_mode",
            )
    return data


def _objectives(value: Any, field: str, line: int | None) -> list[Objective]:
    example = "e.g. objectives: [{name: accuracy, direction: maximize}]"
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"must be a non-empty list of objectives; {example}", field=field, line=line
        )
    found: list[Objective] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"must be a mapping with name and direction; {example}", field=where)
        unknown = sorted(set(item) - {"name", "direction"})
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r}; an objective has only name and direction",
                field=where,
            )
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(
                "is required: the key of the objective in the trial's final metric dict",
                field=f"{where}.name",
            )
        direction = item.get("direction")
        if direction not in DIRECTIONS:
            raise ConfigError(
                f"must be maximize or minimize, got {show(direction)}", field=f"{where}.direction"
            )
        if any(o.name == name for o in found):
            raise ConfigError(f"{name!r} is listed twice; give each objective once", field=where)
        found.append(Objective(name=name, direction=direction))
    return found


def objectives_of(extension: Mapping[str, Any] | None) -> list[Objective]:
    """The objectives of an already validated spec's ``extension`` (empty if none)."""
    raw = (extension or {}).get("objectives") or []
    try:
        return [Objective.model_validate(item) for item in raw]
    except ValidationError:  # a spec stored before the block was validated: no objectives
        return []
