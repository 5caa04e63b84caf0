"""YAML / JSON loading that remembers the line of every mapping key.

Error messages cite ``key (line N)``, so mappings are built as :class:`YamlMap`, a plain
``dict`` that also records where each key sits. Duplicate keys, which PyYAML silently
resolves to the last value, are refused: the user almost always meant something else.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

import yaml

from kubesweep.errors import ConfigError

__all__ = ["YamlMap", "parse_document", "to_json_compatible"]


class YamlMap(dict[str, Any]):
    """A ``dict`` loaded from YAML, with the 1-based line of the mapping and of each key."""

    def __init__(self, *, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are :class:`YamlMap` instances."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[YamlMap]:
    loader.flatten_mapping(node)
    data = YamlMap(line=node.start_mark.line + 1)
    yield data
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ConfigError(
                f"mapping keys must be strings, got {key!r}; quote the key (YAML reads "
                "yes/no/on/off and numbers as non-strings)",
                field=str(key),
                line=line,
            )
        if key in data:
            raise ConfigError(
                f"duplicate key (first at line {data.key_lines[key]}); remove one of them",
                field=key,
                line=line,
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)

_HINTS = (
    ("'\\t'", "YAML indentation must use spaces, not tabs"),
    (
        "mapping values are not allowed",
        "a value containing ': ' needs quotes, or a key is indented deeper than its siblings",
    ),
    (
        "could not find expected ':'",
        "a line is missing the ':' after its key, or a quoted string is not closed",
    ),
    ("did not find expected key", "keys at the same level must line up; check the indentation"),
    ("did not find expected '-'", "list items at the same level must line up"),
    ("found undefined alias", "a '*name' refers to an anchor '&name' that is not defined"),
    ("found unhashable key", "a key cannot be a list or mapping; quote it"),
    ("while scanning a quoted scalar", "a quoted string is not closed"),
    ("expected ',' or ']'", "a [list] is not closed with ]"),
    ("expected ',' or '}'", "a {mapping} is not closed with }; quote values that start with {"),
    ("found character '@'", "values starting with @ or ` must be quoted"),
)


def parse_document(text: str, *, source: str = "<config>") -> YamlMap:
    """Parse a YAML (or JSON) document whose top level must be a mapping."""
    try:
        return _parse_document(text, source)
    except RecursionError:
        # Both parsers recurse per level; hostile nesting must be bad input, not a crash.
        raise ConfigError(
            "is nested too deeply to parse; an experiment config needs a few levels at most",
            field=source,
        ) from None


def _parse_document(text: str, source: str) -> YamlMap:
    if not text.strip():
        raise ConfigError("the config is empty; start from an NNI example config", field=source)
    if text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text, object_pairs_hook=_json_map)
        except json.JSONDecodeError as exc:
            # Flow-style YAML ({key: value}, unquoted keys) starts with "{" too and is valid
            # for NNI; a quoted first key means JSON was meant, so its error is the useful one.
            if not text.lstrip()[1:].lstrip().startswith('"'):
                with contextlib.suppress(ConfigError):
                    return _load_yaml(text, source)
            raise ConfigError(
                f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; check "
                "for trailing commas, single quotes or comments",
                field=source,
                line=exc.lineno,
            ) from exc
        try:
            # JSON is (almost) YAML; the YAML parse adds line numbers when it succeeds.
            return _load_yaml(text, source)
        except ConfigError:
            if not isinstance(parsed, YamlMap):
                raise
            return parsed
    return _load_yaml(text, source)


def _json_map(pairs: list[tuple[str, Any]]) -> YamlMap:
    data = YamlMap()
    for key, value in pairs:
        if key in data:
            raise ConfigError("duplicate key; remove one of them", field=key)
        data[key] = value
    return data


def _load_yaml(text: str, source: str) -> YamlMap:
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f" column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(
            f"is not valid YAML: {problem} at line {line}{column}; {_hint(str(exc))}",
            field=source,
            line=line,
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML: {exc}", field=source) from exc
    if data is None:
        raise ConfigError("the config is empty (only comments?)", field=source)
    if not isinstance(data, YamlMap):
        raise ConfigError(
            f"the top level must be a mapping of 'key: value' lines, got {type(data).__name__}",
            field=source,
            line=1,
        )
    return data


def _hint(message: str) -> str:
    for needle, hint in _HINTS:
        if needle in message:
            return hint
    return "check the indentation and quoting near that line"


def to_json_compatible(value: Any, *, field: str, line: int | None = None) -> Any:
    """Deep-copy ``value`` into plain JSON types, refusing dates, NaN and the like."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        lines = value.key_lines if isinstance(value, YamlMap) else {}
        for key, item in value.items():
            out[str(key)] = to_json_compatible(
                item, field=f"{field}.{key}", line=lines.get(key, line)
            )
        return out
    if isinstance(value, list):
        return [
            to_json_compatible(v, field=f"{field}[{i}]", line=line) for i, v in enumerate(value)
        ]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{value} is not allowed; use a finite number", field=field, line=line)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ConfigError(
        f"{type(value).__name__} value {value!r} is not JSON-compatible; quote it to make it a "
        "string",
        field=field,
        line=line,
    )
