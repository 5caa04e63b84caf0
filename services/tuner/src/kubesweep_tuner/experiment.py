"""One owned experiment: its algorithm, its trials as the event log tells them, and the
decisions the tuner makes from them."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubesweep.config import ExperimentSpec
from kubesweep.config.extension import objectives_of
from kubesweep.errors import ConfigError
from kubesweep.messaging import (
    ACTIVE_TRIAL_STATUSES,
    CANCEL_TRIAL_TASK,
    CLEANUP_EXPERIMENT_TASK,
    DISPATCH_QUEUE,
    EVENT_TRIAL_STATUS,
    LAUNCH_TRIAL_TASK,
    Event,
    ExperimentStatus,
    TrialStatus,
)
from kubesweep.store import Store, StreamEntry
from kubesweep_tuner.algorithms.base import NoMoreTrials, NotReady, Tuner
from kubesweep_tuner.algorithms.registry import accepted_args, create_tuner
from kubesweep_tuner.assessors.base import Assessor, AssessResult
from kubesweep_tuner.assessors.registry import create_assessor
from kubesweep_tuner.custom import load_custom_assessor, load_custom_tuner

log = logging.getLogger(__name__)


def _stream_le(left: str, right: str) -> bool:
    """Compare Redis stream ids (``<ms>-<seq>``) numerically."""
    a, _, b = left.partition("-")
    c, _, d = right.partition("-")
    return (int(a), int(b or 0)) <= (int(c), int(d or 0))


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
    history: list[Any] = field(default_factory=list)
    stop_requested: bool = False


class ExperimentRun:
    """Drives one experiment while this replica holds its lease."""

    def __init__(
        self,
        store: Store,
        tasks: TaskSender,
        exp_id: str,
        owner: str,
        relaunch_after_s: float,
        *,
        allow_custom: bool = False,
    ) -> None:
        self.store, self.tasks, self.id, self.owner = store, tasks, exp_id, owner
        self.relaunch_after_s = relaunch_after_s
        self.allow_custom = allow_custom
        record = store.get_experiment(exp_id)
        self.created = record.created
        self.spec = ExperimentSpec.model_validate(record.spec)
        self.cursor = "0-0"
        self.trials: dict[str, TrialView] = {}
        self.next_parameter_id = 0
        self.exhausted = False
        self.finished = False
        self.tuner = self._make_tuner()
        self.assessor = self._make_assessor()
        self._replaying = False

    def _refuse_custom(self, role: str) -> None:
        if not self.allow_custom:
            raise ConfigError(
                f"custom {role}s are disabled in this tuner deployment (they run user code "
                "inside the tuner); set KUBESWEEP_TUNER_ALLOW_CUSTOM_ALGORITHMS=true to allow",
                field=f"{role}.className",
            )

    def _make_tuner(self) -> Tuner:
        algo = self.spec.tuner
        objectives = objectives_of(self.spec.extension)
        if not algo.name:
            self._refuse_custom("tuner")
            tuner = load_custom_tuner(algo)
        else:
            args = dict(algo.class_args)
            if objectives and "optimize_mode" in accepted_args(algo.name):
                args.setdefault("optimize_mode", objectives[0].direction)
            tuner = create_tuner(algo.name, args)
        if objectives:
            tuner.set_objectives(objectives)
        tuner.update_search_space(self.spec.search_space)
        return tuner

    def _make_assessor(self) -> Assessor | None:
        algo = self.spec.assessor
        if algo is None:
            return None
        if not algo.name:
            self._refuse_custom("assessor")
            return load_custom_assessor(algo)
        return create_assessor(algo.name, dict(algo.class_args))

    # applying the event log ----------------------------------------------------------------

    def replay(self, entries: list[StreamEntry]) -> None:
        """Rebuild the algorithm from a log written by an earlier owner.

        The algorithm is asked again for every recorded trial, at the point of the log it
        had reached when it first chose it (the ``basis`` of ``trial.waiting``), so a
        seeded algorithm ends in the state the earlier owner left it in and proposes the
        same next parameters."""
        self._replaying = True
        try:
            self._replay(entries)
        finally:
            self._replaying = False

    def _replay(self, entries: list[StreamEntry]) -> None:
        held: deque[StreamEntry] = deque()
        for entry in entries:
            event = entry.event
            if event.type != "trial.waiting" or not event.trial_id or event.trial_id in self.trials:
                held.append(entry)
                continue
            basis = str(event.payload.get("basis") or "")
            while held and basis and _stream_le(held[0].id, basis):
                self.apply(held.popleft())
            parameter_id = int(event.payload["parameter_id"])
            # Re-asking advances the algorithm's random state as it was advanced back then.
            with contextlib.suppress(NoMoreTrials, NotReady):
                self.tuner.generate_parameters(parameter_id)
            self.apply(entry)
        for entry in held:
            self.apply(entry)

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
        if event.trial_id is None:
            self._apply_experiment_event(event)
            return
        trial = self.trials.get(event.trial_id)
        if trial is None:
            return
        if event.type == "trial.launched":
            trial.launched = True
        elif event.type == "metric.final" and not trial.result_seen:
            trial.result_seen = True
            self.tuner.receive_trial_result(
                trial.parameter_id, trial.parameters, event.payload["value"]
            )
        elif event.type == "metric.intermediate":
            trial.history.append(event.payload["value"])
            self._assess(event.trial_id or "", trial)
        elif event.type in EVENT_TRIAL_STATUS:
            trial.status = EVENT_TRIAL_STATUS[event.type]
            if trial.status.is_terminal and not trial.end_seen:
                self._ended(event.trial_id or "", trial)

    def _apply_experiment_event(self, event: Event) -> None:
        if event.type == "experiment.updated" and event.payload.get("changes"):
            changes = dict(event.payload["changes"])
            # The event carries the new values, so a replay sees each change where it happened.
            self.spec = self.spec.model_copy(update=changes)
            if "search_space" in changes:
                self.tuner.update_search_space(self.spec.search_space)
                self.exhausted = False
            if "max_trial_number" in changes:
                self.exhausted = False
        elif event.type == "experiment.resumed":
            # maxExecDuration counts again from the resume, as a fresh budget.
            self.created = event.ts
            self.exhausted = False
        elif event.type == "experiment.imported":
            self.tuner.import_data(list(event.payload.get("data", [])))

    def _ended(self, trial_id: str, trial: TrialView) -> None:
        trial.end_seen = True
        success = trial.status is TrialStatus.SUCCEEDED
        if (
            trial.status is TrialStatus.EARLY_STOPPED
            and self.spec.tuner.include_intermediate_results
            and trial.history
            and not trial.result_seen
        ):
            # NNI's includeIntermediateResults: the last intermediate result stands in
            # for the final one the stopped trial never reported.
            trial.result_seen = True
            self.tuner.receive_trial_result(trial.parameter_id, trial.parameters, trial.history[-1])
        self.tuner.trial_end(trial.parameter_id, success)
        if self.assessor is not None:
            self.assessor.trial_end(trial_id, success)

    def _assess(self, trial_id: str, trial: TrialView) -> None:
        if self.assessor is None or trial.status.is_terminal or trial.stop_requested:
            return
        verdict = self.assessor.assess_trial(trial_id, list(trial.history))
        if verdict is not AssessResult.BAD or self._replaying:
            return
        trial.stop_requested = True
        judge = self.spec.assessor.name if self.spec.assessor else "the assessor"
        if self.store.transition_trial(
            self.id,
            trial_id,
            TrialStatus.EARLY_STOPPED,
            allowed_from=ACTIVE_TRIAL_STATUSES,
            fields={"message": f"stopped early by {judge}"},
        ):
            log.info("early stop", extra={"experiment_id": self.id, "trial_id": trial_id})
            self.tasks.send_task(CANCEL_TRIAL_TASK, args=[self.id, trial_id], queue=DISPATCH_QUEUE)

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
        while len(self.active) < self.spec.trial_concurrency and not self._no_more_trials():
            if not self._create_one():
                break  # the algorithm waits for results, or the store refused: next tick
        if self._no_more_trials():
            self._finish_when_drained(status)

    def _no_more_trials(self) -> bool:
        limit = self.spec.max_trial_number
        return self.exhausted or (limit is not None and self.store.count_trials(self.id) >= limit)

    def _create_one(self) -> bool:
        parameter_id = self.next_parameter_id
        try:
            parameters = self.tuner.generate_parameters(parameter_id)
        except NoMoreTrials:
            self.exhausted = True
            return False
        except NotReady:
            return False
        self.next_parameter_id += 1
        record = self.store.create_trial(
            owner=self.owner,
            max_trials=self.spec.max_trial_number or 0,
            exp_id=self.id,
            parameter_id=parameter_id,
            parameters=parameters,
            basis=self.cursor,
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

    def cancel(self, trial_id: str, message: str) -> None:
        """Cancel an active trial as SYS_CANCELED (experiment deadline or failure)."""
        if self.store.transition_trial(
            self.id,
            trial_id,
            TrialStatus.SYS_CANCELED,
            allowed_from=ACTIVE_TRIAL_STATUSES,
            fields={"message": message},
        ):
            self.tasks.send_task(CANCEL_TRIAL_TASK, args=[self.id, trial_id], queue=DISPATCH_QUEUE)

    def _finish_at_deadline(self) -> None:
        for trial_id in self.active:
            self.cancel(trial_id, "maxExecDuration reached")
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
        self.tasks.send_task(CLEANUP_EXPERIMENT_TASK, args=[self.id], queue=DISPATCH_QUEUE)
        log.info("experiment done", extra={"experiment_id": self.id})
