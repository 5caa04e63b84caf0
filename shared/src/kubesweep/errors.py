"""The error hierarchy every kubesweep component raises.

Errors are typed by what the caller should do about them: fix the input
(`ConfigError`), try again later (`TransientError`), or give up on the unit of
work (`PermanentError`). Adapters wrap vendor exceptions with ``raise ... from exc``.
"""

from __future__ import annotations


class KubesweepError(Exception):
    """Root of every error kubesweep raises on purpose."""


class ConfigError(KubesweepError):
    """The user's input is wrong; the message names the field and the fix (HTTP 4xx, exit 2)."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        self.field = field
        self.line = line
        where = ""
        if field:
            where = f"{field}"
            if line is not None:
                where += f" (line {line})"
            where += ": "
        super().__init__(f"{where}{message}")
        self.reason = message


class NotFoundError(KubesweepError):
    """A named experiment, trial or file does not exist (HTTP 404)."""


class ConflictError(KubesweepError):
    """The request conflicts with the current state, e.g. a finished trial (HTTP 409)."""


class TransientError(KubesweepError):
    """A dependency failed in a way that may succeed on retry (with backoff)."""


class PermanentError(KubesweepError):
    """The unit of work cannot succeed; fail the trial or the request."""
