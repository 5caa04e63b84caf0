"""One JSON error shape for every HTTP service: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

from typing import Any

from kubesweep.errors import (
    ConfigError,
    ConflictError,
    KubesweepError,
    NotFoundError,
    PermanentError,
    TransientError,
)

_STATUS: tuple[tuple[type[KubesweepError], int, str], ...] = (
    (ConfigError, 400, "invalid_input"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (TransientError, 503, "unavailable"),
    (PermanentError, 422, "unprocessable"),
)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(exc: KubesweepError) -> tuple[dict[str, Any], int]:
    """Map a kubesweep error to its JSON body and HTTP status."""
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return error_body(code, str(exc), getattr(exc, "field", None)), status
    return error_body("error", str(exc)), 500
