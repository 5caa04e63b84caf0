"""The watcher: turns what platforms see into trial transitions.

- Local keepers report their own status; the watcher only fails a trial whose keeper
  vanished without reporting (NNI leaves it RUNNING forever).
- Kubeflow jobs do not: the watcher maps the job's conditions to RUNNING / SUCCEEDED /
  FAILED, shows why pods are pending, fails a trial pending longer than its timeout, and
  fails one whose job was deleted out of band.
"""

from __future__ import annotations

import logging
import threading
import time

from kubesweep.config import ExperimentSpec
from kubesweep.errors import KubesweepError, NotFoundError
from kubesweep.messaging import ACTIVE_TRIAL_STATUSES, TrialStatus
from kubesweep.records import TrialRecord
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms import JobObservation, Platform

log = logging.getLogger(__name__)
# A keeper reports its end just before exiting; give that report time to land.
GRACE_S = 3.0


class Watcher:
    """One sweep over every active trial of every live experiment."""

    def __init__(self, ctx: DispatcherContext) -> None:
        self.ctx = ctx
        self._suspects: dict[tuple[str, str], float] = {}
        self._reasons: dict[tuple[str, str], str] = {}

    def sweep(self) -> int:
        changed = 0
        seen: set[tuple[str, str]] = set()
        for exp_id in self.ctx.store.list_experiment_ids():
            try:
                experiment = self.ctx.store.get_experiment(exp_id)
            except NotFoundError:
                continue
            if experiment.status.is_terminal:
                continue
            spec = ExperimentSpec.model_validate(experiment.spec)
            platform = self.ctx.platform_for(spec)
            for trial in self.ctx.store.list_trials(exp_id):
                if trial.status not in ACTIVE_TRIAL_STATUSES or not trial.job:
                    continue
                seen.add((exp_id, trial.id))
                try:
                    changed += self._check(platform, spec, trial)
                except KubesweepError as exc:
                    log.warning(
                        "cannot check the job: %s",
                        exc,
                        extra={"experiment_id": exp_id, "trial_id": trial.id},
                    )
        for key in set(self._suspects) - seen:
            del self._suspects[key]
        for key in set(self._reasons) - seen:
            del self._reasons[key]
        return changed

    def _check(self, platform: Platform, spec: ExperimentSpec, trial: TrialRecord) -> int:
        observation = platform.observe(trial)
        if observation is None:
            return self._check_alive(platform, trial)
        return self._apply(platform, spec, trial, observation)

    def _check_alive(self, platform: Platform, trial: TrialRecord) -> int:
        if platform.is_alive(trial) is not False:
            return 0
        return self._fail_after_grace(
            trial, "the trial's job ended without reporting (killed or lost)"
        )

    def _fail_after_grace(self, trial: TrialRecord, message: str) -> int:
        key = (trial.experiment_id, trial.id)
        first = self._suspects.setdefault(key, time.monotonic())
        if time.monotonic() - first < GRACE_S:
            return 0
        return self._move(trial, TrialStatus.FAILED, message)

    def _apply(
        self, platform: Platform, spec: ExperimentSpec, trial: TrialRecord, seen: JobObservation
    ) -> int:
        if not seen.exists:
            return self._fail_after_grace(trial, seen.message or "the job disappeared")
        if seen.status is not None:
            if seen.status is TrialStatus.RUNNING and trial.status is TrialStatus.RUNNING:
                return 0
            return self._move(trial, seen.status, seen.message)
        key = (trial.experiment_id, trial.id)
        if seen.message and self._reasons.get(key) != seen.message:
            self._reasons[key] = seen.message
            self.ctx.store.annotate_trial(
                trial.experiment_id,
                trial.id,
                "trial.launched",
                allowed_from=[TrialStatus.WAITING],
                fields={"message": seen.message},
                payload={"pending": seen.message},
            )
        timeout = platform.pending_timeout(spec)
        since = seen.pending_since or trial.launched
        if timeout is not None and since is not None and time.time() - since > timeout:
            platform.cancel(trial)
            why = seen.message or "no reason reported"
            return self._move(trial, TrialStatus.FAILED, f"pending for over {timeout:.0f} s: {why}")
        return 0

    def _move(self, trial: TrialRecord, status: TrialStatus, message: str) -> int:
        allowed = (
            [TrialStatus.WAITING] if status is TrialStatus.RUNNING else list(ACTIVE_TRIAL_STATUSES)
        )
        moved = self.ctx.store.transition_trial(
            trial.experiment_id,
            trial.id,
            status,
            allowed_from=allowed,
            fields={"message": message or None},
            payload={"message": message},
        )
        if moved:
            log.info(
                "trial %s: %s",
                status.value,
                message,
                extra={"experiment_id": trial.experiment_id, "trial_id": trial.id},
            )
        return int(moved)


def run(ctx: DispatcherContext, stop: threading.Event) -> None:
    watcher = Watcher(ctx)
    while not stop.is_set():
        try:
            watcher.sweep()
        except Exception:
            log.exception("watch sweep failed; retrying")
        stop.wait(ctx.settings.watch_interval_s)
