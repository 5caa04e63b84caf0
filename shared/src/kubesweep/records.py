"""Experiment and trial records as stored in Redis and returned by the API."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from kubesweep.messaging import ExperimentStatus, TrialStatus

_TRIAL_JSON_FIELDS = ("parameters", "final", "last_intermediate")


def default_metric(value: Any) -> float | None:
    """NNI's "default metric": the number itself, or a dict's numeric ``default`` key."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return default_metric(value.get("default"))
    return None


class TrialRecord(BaseModel):
    """One trial: what the tuner asked for and what became of it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    experiment_id: str
    seq: int
    status: TrialStatus
    parameter_id: int
    parameters: dict[str, Any]
    attempt: int = 1
    created: float
    launched: float | None = None
    started: float | None = None
    ended: float | None = None
    final: Any = None
    default_metric: float | None = None
    intermediate_count: int = 0
    last_intermediate: Any = None
    message: str = ""
    exit_code: int | None = None
    job: str = ""
    storage_url: str = ""

    def to_hash(self) -> dict[str, str]:
        data = self.model_dump(mode="json")
        out: dict[str, str] = {}
        for key, value in data.items():
            if value is None:
                continue
            out[key] = json.dumps(value) if key in _TRIAL_JSON_FIELDS else str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TrialRecord:
        data: dict[str, Any] = dict(raw)
        for key in _TRIAL_JSON_FIELDS:
            if key in data:
                data[key] = json.loads(data[key])
        return cls.model_validate(data)


class ExperimentRecord(BaseModel):
    """One experiment: its normalised spec and lifecycle."""

    model_config = ConfigDict(extra="ignore")

    id: str
    spec: dict[str, Any]
    status: ExperimentStatus
    created: float
    updated: float
    ended: float | None = None
    message: str = ""
    revision: int = 1
    owner: str = ""
    code_sha256: str = ""

    def to_hash(self) -> dict[str, str]:
        data = self.model_dump(mode="json")
        return {
            key: json.dumps(value) if key == "spec" else str(value)
            for key, value in data.items()
            if value is not None
        }

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> ExperimentRecord:
        # An emptied field (e.g. `ended` after a resume) reads as unset.
        data: dict[str, Any] = {k: v for k, v in raw.items() if v != ""}
        data["spec"] = json.loads(data.get("spec", "{}"))
        return cls.model_validate(data)
