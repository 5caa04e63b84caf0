"""One owned experiment: its algorithm, its trials as the event log tells them, and the
decisions the tuner makes from them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from kubesweep.config import ExperimentSpec
from kubesweep.errors import ConfigError
from kubesweep.messaging import (
    ACTIVE_TRIAL_STATUSES,
    CANCEL_TRIAL_TASK,
    DISPATCH_QUEUE,
    EVENT_TRIAL_STATUS,
    LAUNCH_TRIAL_TASK,
    ExperimentStatus,
    TrialStatus,
)
from kubesweep.store import Store, StreamEntry
from kubesweep_tuner.algorithms.base import NoMoreTrials, Tuner
from kubesweep_tuner.algorithms.registry import create_tuner

log = logging.getLogger(__name__)


class TaskSender(Protocol):
    def send_task(self, name: str, args: list[Any], queue: str) -> Any: ...


@dataclass
class TrialView:
    """What the tuner knows of one trial."""

    parameter_id: int
    parameters: dict[str, Any]
    created: float
    status: TrialStatus = TrialStatus.WAITING
    launched: bool = False
    result_seen: bool = False
    end_seen: bool = False
    last_sent: float = 0.0


class ExperimentRun:
    """Drives one experiment while this replica holds its lease."""

    def __init__(
        self, store: Store, tasks: TaskSender, exp_id: str, owner: str, relaunch_after_s: float
    ) -> None:
        self.store, self.tasks, self.id, self.owner = store, tasks, exp_id, owner
        self.relaunch_after_s = relaunch_after_s
        record = store.get_experiment(exp_id)
        self.created = record.created
        self.spec = ExperimentSpec.model_validate(record.spec)
        self.cursor = "0-0"
        self.trials: dict[str, TrialView] = {}
        self.next_parameter_id = 0
        self.exhausted = False
        self.finished = False
        self.tuner = self._make_tuner()

    def _make_tuner(self) -> Tuner:
        algo = self.spec.tuner
        if not algo.name:
            raise ConfigError("custom tuners are not enabled in this deployment", field="tuner")
        tuner = create_tuner(algo.name, dict(algo.class_args))
        tuner.update_search_space(self.spec.search_space)
        return tuner

    # applying the event log ----------------------------------------------------------------

    def apply(self, entry: StreamEntry) -> None:
        self.cursor = entry.id
        event = entry.event
        if event.type == "trial.waiting" and event.trial_id:
            parameter_id = int(event.payload["parameter_id"])
            self.trials.setdefault(
                event.trial_id,
                TrialView(parameter_id, dict(event.payload["parameters"]), event.ts),
            )
            self.next_parameter_id = max(self.next_parameter_id, parameter_id + 1)
            return
        trial = self.trials.get(event.trial_id or "")
        if trial is None:
            if event.type == "experiment.updated" and "changes" in event.payload:
                self.spec = ExperimentSpec.model_validate(self.store.get_experiment(self.id).spec)
            return
        if event.type == "trial.launched":
            trial.launched = True
        elif event.type == "metric.final" and not trial.result_seen:
            trial.result_seen = True
            self.tuner.receive_trial_result(
                trial.parameter_id, trial.parameters, event.payload["value"]
            )
        elif event.type in EVENT_TRIAL_STATUS:
            trial.status = EVENT_TRIAL_STATUS[event.type]
            if trial.status.is_terminal and not trial.end_seen:
                trial.end_seen = True
                self.tuner.trial_end(trial.parameter_id, trial.status is TrialStatus.SUCCEEDED)

    # decisions -----------------------------------------------------------------------------

    @property
    def active(self) -> list[str]:
        return [tid for tid, t in self.trials.items() if t.status in ACTIVE_TRIAL_STATUSES]

    def tick(self) -> None:
        """Launch what the limits allow, resend lost launches, and finish when due."""
        status = self.store.experiment_status(self.id)
        if status is None or status.is_terminal or status is ExperimentStatus.STOPPING:
            self.finished = True
            return
        self._resend_lost_launches()
        if self._past_deadline():
            self._finish_at_deadline()
            return
        limit = self.spec.max_trial_number
        can_create = not self.exhausted and (
            limit is None or self.store.count_trials(self.id) < limit
        )
        while can_create and len(self.active) < self.spec.trial_concurrency:
            if not self._create_one():
                can_create = False
        if not can_create:
            self._finish_when_drained(status)

    def _create_one(self) -> bool:
        parameter_id = self.next_parameter_id
        try:
            parameters = self.tuner.generate_parameters(parameter_id)
        except NoMoreTrials:
            self.exhausted = True
            return False
        self.next_parameter_id += 1
        record = self.store.create_trial(
            owner=self.owner,
            max_trials=self.spec.max_trial_number or 0,
            exp_id=self.id,
            parameter_id=parameter_id,
            parameters=parameters,
        )
        if record is None:
            self.tuner.trial_end(parameter_id, False)
            return False
        self.trials[record.id] = TrialView(parameter_id, parameters, record.created)
        self._send_launch(record.id)
        return True

    def _send_launch(self, trial_id: str) -> None:
        self.trials[trial_id].last_sent = time.time()
        try:
            self.tasks.send_task(LAUNCH_TRIAL_TASK, args=[self.id, trial_id], queue=DISPATCH_QUEUE)
        except Exception:  # the reconcile pass re-sends it
            log.exception(
                "could not queue the launch", extra={"experiment_id": self.id, "trial_id": trial_id}
            )

    def _resend_lost_launches(self) -> None:
        now = time.time()
        for trial_id, trial in self.trials.items():
            if (
                trial.status is TrialStatus.WAITING
                and not trial.launched
                and now - max(trial.created, trial.last_sent) > self.relaunch_after_s
            ):
                log.info(
                    "re-sending launch", extra={"experiment_id": self.id, "trial_id": trial_id}
                )
                self._send_launch(trial_id)

    def _past_deadline(self) -> bool:
        limit = self.spec.max_experiment_duration
        return limit is not None and time.time() - self.created > limit

    def _finish_at_deadline(self) -> None:
        for trial_id in self.active:
            if self.store.transition_trial(
                self.id,
                trial_id,
                TrialStatus.SYS_CANCELED,
                allowed_from=ACTIVE_TRIAL_STATUSES,
                fields={"message": "maxExecDuration reached"},
            ):
                self.tasks.send_task(
                    CANCEL_TRIAL_TASK, args=[self.id, trial_id], queue=DISPATCH_QUEUE
                )
        self._done("maxExecDuration reached")

    def _finish_when_drained(self, status: ExperimentStatus) -> None:
        if self.active:
            if status is ExperimentStatus.RUNNING:
                self.store.transition_experiment(
                    self.id,
                    ExperimentStatus.NO_MORE_TRIAL,
                    allowed_from=[ExperimentStatus.RUNNING],
                )
            return
        self._done("search space exhausted" if self.exhausted else "")

    def _done(self, message: str) -> None:
        self.store.transition_experiment(
            self.id,
            ExperimentStatus.DONE,
            event_type="experiment.done",
            message=message,
            allowed_from=[ExperimentStatus.RUNNING, ExperimentStatus.NO_MORE_TRIAL],
        )
        self.finished = True
        log.info("experiment done", extra={"experiment_id": self.id})
