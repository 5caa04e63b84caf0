"""The report bodies trial keepers send, validated before anything is recorded."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kubesweep.messaging import MetricType


def _check_number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{where} must be finite, got {value}")


# Metrics are flat numbers or small dicts; a deeply nested value used to pass validation and
# then fail to serialise (500) when the event was written.
MAX_VALUE_DEPTH = 10


def _depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests, counting no further than ``limit + 1``."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(item, limit - 1) for item in items), default=0)


class MetricEntry(BaseModel):
    """One intermediate or final result: a number, or a dict with a numeric ``default``."""

    model_config = ConfigDict(extra="forbid")

    type: MetricType
    sequence: int = Field(ge=0, le=10_000_000)
    value: float | dict[str, Any]

    @field_validator("value", mode="before")
    @classmethod
    def _metric_shape(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if "default" not in value:
                raise ValueError('a dict metric needs a numeric "default" key')
            _check_number(value["default"], 'value["default"]')
            if _depth(value, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH:
                raise ValueError(
                    f"a dict metric may nest at most {MAX_VALUE_DEPTH} levels; report flat keys"
                )
            return value
        _check_number(value, "value")
        return value


class MetricReport(MetricEntry):
    """One metric of one trial attempt."""

    attempt: int = Field(ge=1)


class MetricBatch(BaseModel):
    """Several metrics of one trial attempt, recorded in one Redis call (in order)."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1)
    metrics: list[MetricEntry] = Field(min_length=1)


class StatusReport(BaseModel):
    """A keeper's own view of its trial: started, or ended with an exit code."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1)
    status: Literal["RUNNING", "SUCCEEDED", "FAILED"]
    exit_code: int | None = None
    message: str = Field(default="", max_length=2000)
