"""Small helpers shared by the numpy-based tuners (GridSearch, Batch, Evolution, Hyperband)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from typing import Any

from kubesweep_tuner.algorithms.base import Tuner

__all__ = ["decode_import", "loss_or_none"]

log = logging.getLogger(__name__)


def loss_or_none(tuner: Tuner, value: Any) -> float | None:
    """The loss for a reported metric, or None (logged) if it is not a finite number."""
    try:
        loss = tuner.metric_to_loss(value)
    except ValueError as exc:
        log.warning("ignoring a result: %s", exc)
        return None
    if not math.isfinite(loss):
        log.warning("ignoring non-finite metric %r", value)
        return None
    return loss


def decode_import(record: Any) -> tuple[Any, Any] | None:
    """``(parameters, value)`` of an NNI import record; the value may be a JSON string.

    None (logged) for a record that is not an object.
    """
    if not isinstance(record, dict):
        log.warning("ignoring an imported record that is not an object: %r", record)
        return None
    value = record.get("value")
    if isinstance(value, str):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    return record.get("parameter"), value
