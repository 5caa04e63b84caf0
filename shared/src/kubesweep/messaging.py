"""Message contracts between services: statuses, events, Celery queue and task names.

Services talk only through these names, so the tuner can send a dispatcher task
by name without importing the dispatcher.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DISPATCH_QUEUE = "kubesweep.dispatch"
LAUNCH_TRIAL_TASK = "kubesweep.dispatcher.launch_trial"
CANCEL_TRIAL_TASK = "kubesweep.dispatcher.cancel_trial"
CLEANUP_EXPERIMENT_TASK = "kubesweep.dispatcher.cleanup_experiment"


class TrialStatus(StrEnum):
    """NNI's trial statuses, so NNI users read them without translation."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    USER_CANCELED = "USER_CANCELED"
    SYS_CANCELED = "SYS_CANCELED"
    EARLY_STOPPED = "EARLY_STOPPED"

    @property
    def is_terminal(self) -> bool:
        return self not in (TrialStatus.WAITING, TrialStatus.RUNNING)


TERMINAL_TRIAL_STATUSES = frozenset(s for s in TrialStatus if s.is_terminal)
ACTIVE_TRIAL_STATUSES = frozenset(s for s in TrialStatus if not s.is_terminal)


class ExperimentStatus(StrEnum):
    """NNI's experiment statuses (the subset kubesweep reaches)."""

    INITIALIZED = "INITIALIZED"
    RUNNING = "RUNNING"
    NO_MORE_TRIAL = "NO_MORE_TRIAL"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DONE = "DONE"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        return self in (ExperimentStatus.STOPPED, ExperimentStatus.DONE, ExperimentStatus.ERROR)


class MetricType(StrEnum):
    """NNI's metric types on the wire."""

    PERIODICAL = "PERIODICAL"
    FINAL = "FINAL"


EventType = Literal[
    "experiment.submitted",
    "experiment.updated",
    "experiment.stopping",
    "experiment.stopped",
    "experiment.done",
    "experiment.failed",
    "experiment.resumed",
    "experiment.imported",
    "trial.waiting",
    "trial.launched",
    "trial.retrying",
    "trial.running",
    "trial.succeeded",
    "trial.failed",
    "trial.user_canceled",
    "trial.early_stopped",
    "trial.sys_canceled",
    "metric.intermediate",
    "metric.final",
]

TRIAL_STATUS_EVENTS: dict[TrialStatus, EventType] = {
    TrialStatus.WAITING: "trial.waiting",
    TrialStatus.RUNNING: "trial.running",
    TrialStatus.SUCCEEDED: "trial.succeeded",
    TrialStatus.FAILED: "trial.failed",
    TrialStatus.USER_CANCELED: "trial.user_canceled",
    TrialStatus.SYS_CANCELED: "trial.sys_canceled",
    TrialStatus.EARLY_STOPPED: "trial.early_stopped",
}

EVENT_TRIAL_STATUS: dict[str, TrialStatus] = {v: k for k, v in TRIAL_STATUS_EVENTS.items()}


class Event(BaseModel):
    """One entry of an experiment's event stream (`ks:exp:<id>:events`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: EventType
    experiment_id: str
    trial_id: str | None = None
    ts: float = Field(default_factory=time.time)
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls.model_validate_json(raw)
