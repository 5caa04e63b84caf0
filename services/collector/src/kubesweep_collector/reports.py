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


class MetricReport(BaseModel):
    """One intermediate or final result: a number, or a dict with a numeric ``default``."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1)
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
            return value
        _check_number(value, "value")
        return value


class StatusReport(BaseModel):
    """A keeper's own view of its trial: started, or ended with an exit code."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1)
    status: Literal["RUNNING", "SUCCEEDED", "FAILED"]
    exit_code: int | None = None
    message: str = Field(default="", max_length=2000)
