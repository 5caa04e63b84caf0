"""Logging set-up for entry points: text on a terminal, JSON lines in containers.

Library code only calls ``logging.getLogger(__name__)``; ids travel in ``extra``
(``experiment_id``, ``trial_id``) and appear in every structured line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_CONTEXT_FIELDS = ("experiment_id", "trial_id", "service")


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the context fields kubesweep attaches."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


class TextFormatter(logging.Formatter):
    """Human-readable lines that still carry the experiment and trial ids."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("experiment_id", "trial_id")
            if getattr(record, name, None)
        )
        base = super().format(record)
        return f"{base} [{ids}]" if ids else base


def configure(service: str, *, level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, from an entry point."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "waitress.queue", "kombu", "celery.worker.strategy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
