"""Typed access to one mapping of a config, with errors naming key, line and fix."""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Collection, Mapping
from typing import Any

from kubesweep.config.yamlsource import YamlMap, to_json_compatible
from kubesweep.errors import ConfigError

__all__ = ["PlaceholderWarning", "Section", "show"]


class PlaceholderWarning(UserWarning):
    """A value looks like an unfilled template placeholder such as ``{your_nfs_server}``."""


def show(value: object) -> str:
    """Render a user value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class Section:
    """One mapping of the config at a dotted ``path`` (``""`` for the top level)."""

    def __init__(self, data: Mapping[str, Any], path: str = "", line: int | None = None) -> None:
        self.data = data
        self.path = path
        self.line = line if line is not None else getattr(data, "line", None)
        self._lines: dict[str, int] = data.key_lines if isinstance(data, YamlMap) else {}

    def field(self, key: str) -> str:
        """The dotted path of ``key``."""
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, key: str) -> int | None:
        """The line of ``key``, or of this mapping when the key is absent."""
        return self._lines.get(key, self.line)

    def error(self, key: str, message: str) -> ConfigError:
        """A ``ConfigError`` located at ``key``."""
        return ConfigError(message, field=self.field(key), line=self.line_of(key))

    def has(self, key: str) -> bool:
        """Whether ``key`` is set to something other than null."""
        return self.data.get(key) is not None

    def check_keys(self, allowed: Collection[str]) -> None:
        """Refuse keys not in ``allowed``, suggesting the closest valid one."""
        for key in self.data:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
            if not close:
                close = [k for k in allowed if k.lower() == key.lower()]
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
            where = f"under {self.path}" if self.path else "at the top level"
            raise self.error(
                key, f"unknown key; {hint} Valid keys {where}: {', '.join(sorted(allowed))}"
            )

    def forbid(self, key: str, reason: str) -> None:
        """Refuse ``key`` if present at all."""
        if key in self.data:
            raise self.error(key, reason)

    def require(self, key: str, hint: str) -> Any:
        """The value of ``key``; missing or null raises ``is required; <hint>``."""
        if not self.has(key):
            raise self.error(key, f"is required; {hint}")
        return self.data[key]

    def get_str(
        self,
        key: str,
        *,
        choices: Collection[str] | None = None,
        pattern: str | None = None,
        pattern_hint: str = "",
    ) -> str | None:
        """A string value, or None when absent; ``{placeholder}`` mappings become text."""
        if not self.has(key):
            return None
        value = self.data[key]
        placeholder = _placeholder_text(value)
        if placeholder is not None:
            warnings.warn(
                f"{self.field(key)} (line {self.line_of(key)}): {placeholder} looks like an "
                "unfilled template placeholder; replace it with a real value",
                PlaceholderWarning,
                stacklevel=2,
            )
            value = placeholder
        elif isinstance(value, int | float) and not isinstance(value, bool) and choices is None:
            value = str(value)  # e.g. `apiVersion: 1` or `server: 10.0.0.1`-like scalars
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {show(value)}; quote it if needed")
        if choices is not None and value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}{hint}")
        if pattern is not None and placeholder is None and not re.fullmatch(pattern, value):
            raise self.error(key, f"{value!r} is not valid; {pattern_hint}")
        return value

    def req_str(self, key: str, hint: str, **kwargs: Any) -> str:
        """A required string value."""
        self.require(key, hint)
        value = self.get_str(key, **kwargs)
        assert value is not None
        return value

    def get_bool(self, key: str, default: bool = False) -> bool:
        """A boolean value (YAML true/false), or ``default`` when absent."""
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {show(value)}")
        return value

    def get_int(self, key: str, *, low: int, high: int | None = None) -> int | None:
        """An integer in ``[low, high]``, or None when absent."""
        if not self.has(key):
            return None
        value = self.data[key]
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            raise self.error(key, f"must be an integer {bound}, got {show(value)}")
        return int(value)

    def req_int(self, key: str, hint: str, *, low: int, high: int | None = None) -> int:
        """A required integer in ``[low, high]``."""
        self.require(key, hint)
        value = self.get_int(key, low=low, high=high)
        assert value is not None
        return value

    def get_positive_number(self, key: str) -> float | None:
        """A number > 0 (int or float), or None when absent."""
        if not self.has(key):
            return None
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.error(key, f"must be a number > 0, got {show(value)}")
        return float(value)

    def section(self, key: str) -> Section | None:
        """The nested mapping at ``key``, or None when absent."""
        if not self.has(key):
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping of 'key: value' lines, got {show(value)}")
        return Section(value, self.field(key), self.line_of(key))

    def req_section(self, key: str, hint: str) -> Section:
        """A required nested mapping."""
        self.require(key, hint)
        found = self.section(key)
        assert found is not None
        return found

    def get_json(self, key: str) -> dict[str, Any]:
        """A free-form mapping (classArgs, extension blocks) as plain JSON data."""
        found = self.section(key)
        if found is None:
            return {}
        result: dict[str, Any] = to_json_compatible(found.data, field=found.path, line=found.line)
        return result


def _placeholder_text(value: object) -> str | None:
    # YAML reads `image: {your_image}` as the mapping {"your_image": None}.
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if isinstance(key, str) and inner is None:
            return "{" + key + "}"
    return None
