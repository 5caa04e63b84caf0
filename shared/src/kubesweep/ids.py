"""Validation of ids before they reach Redis keys, storage paths or Kubernetes names."""

from __future__ import annotations

import re

from kubesweep.errors import ConfigError

# DNS-1123 label characters only, so an id is safe in a key, a path and a job name.
ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.fullmatch(value))


def check_id(value: str, field: str) -> str:
    if not is_valid_id(value):
        raise ConfigError(
            "must be 1-32 lowercase letters, digits or '-', starting and ending with a "
            f"letter or digit; got {value[:64]!r}",
            field=field,
        )
    return value
