"""The watcher: turns what platforms see into trial transitions.

- Local keepers report their own status; the watcher only fails a trial whose keeper
  vanished without reporting (NNI leaves it RUNNING forever).
- Kubeflow jobs do not: the platform follows the jobs and their pods with the Kubernetes
  watch API (``Platform.follow``) and tells the watcher which trial changed, at once; the
  watcher maps the job's conditions to RUNNING / SUCCEEDED / FAILED, shows why pods are
  pending, fails a trial pending longer than its timeout, and fails one whose job was
  deleted out of band.
- A job ended by the infrastructure (an eviction; an image that cannot be pulled or no node
  to run on, at the pending timeout) is retried as a new attempt, up to the platform's
  ``max_attempts``, without counting as a trial failure; then the trial FAILS with the reason.

Besides the events, a sweep every ``watch_interval_s`` looks at every active trial: time
limits, vanished local keepers, retried attempts whose launch was lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from kubesweep.celeryapp import make_celery
from kubesweep.config import ExperimentSpec
from kubesweep.errors import KubesweepError, NotFoundError
from kubesweep.messaging import (
    ACTIVE_TRIAL_STATUSES,
    DISPATCH_QUEUE,
    LAUNCH_TRIAL_TASK,
    TrialStatus,
)
from kubesweep.records import TrialRecord
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms import JobObservation, Platform

log = logging.getLogger(__name__)
# A keeper reports its end just before exiting; give that report time to land.
GRACE_S = 3.0
# A retried attempt whose launch has not been recorded by then is sent again.
RELAUNCH_AFTER_S = 10.0
# A job can change before the worker has recorded it on its trial (the operator is fast):
# such a change is looked at again this often, this many times, before the sweep takes over.
RECHECK_S = 0.1
RECHECKS = 30
Key = tuple[str, str]
SendLaunch = Callable[[str, str], None]


class Watcher:
    """Reacts to platform events (``handle``) and sweeps every active trial (``sweep``)."""

    def __init__(self, ctx: DispatcherContext, send_launch: SendLaunch | None = None) -> None:
        self.ctx = ctx
        self.changes: queue.Queue[Key] = queue.Queue()
        self._send_launch = send_launch or _celery_sender(ctx)
        self._suspects: dict[Key, float] = {}
        self._reasons: dict[Key, str] = {}
        self._relaunched: dict[Key, float] = {}
        self._specs: dict[str, ExperimentSpec] = {}
        self._followed: set[str] = set()
        self._later: dict[Key, tuple[float, int]] = {}  # rechecks: due time, count

    # -- events ----------------------------------------------------------------------------

    def notify(self, exp_id: str, trial_id: str) -> None:
        """A trial's job changed (called from the platforms' threads)."""
        self.changes.put((exp_id, trial_id))

    def wait(self, timeout: float) -> int:
        """Handle the changes that arrive within ``timeout`` s (and the rechecks that fall
        due); returns the transitions made."""
        keys = self._due()
        if not keys:
            due = min((at for at, _ in self._later.values()), default=None)
            if due is not None:
                timeout = min(timeout, due - time.monotonic())
            try:
                keys = {self.changes.get(timeout=max(0.0, timeout))}
            except queue.Empty:
                keys = self._due()
        while True:  # everything queued meanwhile, each trial once
            try:
                keys.add(self.changes.get_nowait())
            except queue.Empty:
                break
        return sum(self.handle(*key) for key in keys)

    def _due(self) -> set[Key]:
        now = time.monotonic()
        return {key for key, (at, _) in self._later.items() if at <= now}

    def handle(self, exp_id: str, trial_id: str) -> int:
        """Look at one trial now (its job changed)."""
        try:
            spec = self._specs.get(exp_id) or self._live_spec(exp_id)
            trial = self.ctx.store.get_trial(exp_id, trial_id)
        except NotFoundError:
            return 0
        if spec is None:
            return 0
        key = (exp_id, trial_id)
        if trial.status is TrialStatus.WAITING and not trial.job:
            # Its job changed before the worker recorded it: look again shortly.
            count = self._later.get(key, (0.0, 0))[1]
            if count < RECHECKS:
                self._later[key] = (time.monotonic() + RECHECK_S, count + 1)
            else:
                self._later.pop(key, None)
            return 0
        self._later.pop(key, None)
        if trial.status not in ACTIVE_TRIAL_STATUSES or not trial.job:
            return 0
        try:
            return self._check(self.ctx.platform_for(spec), spec, trial)
        except KubesweepError as exc:
            log.warning(
                "cannot check the job: %s",
                exc,
                extra={"experiment_id": exp_id, "trial_id": trial_id},
            )
            return 0

    # -- sweep -----------------------------------------------------------------------------

    def sweep(self) -> int:
        changed = 0
        seen: set[Key] = set()
        live: dict[str, list[ExperimentSpec]] = {}
        specs: dict[str, ExperimentSpec] = {}
        for exp_id in self.ctx.store.list_experiment_ids():
            try:
                experiment = self.ctx.store.get_experiment(exp_id)
            except NotFoundError:
                continue
            if experiment.status.is_terminal:
                continue
            spec = self._specs.get(exp_id) or ExperimentSpec.model_validate(experiment.spec)
            specs[exp_id] = spec
            live.setdefault(spec.platform, []).append(spec)
        self._specs = specs
        self._follow(live)
        for exp_id, spec in specs.items():
            platform = self.ctx.platform_for(spec)
            for trial in self.ctx.store.list_trials(exp_id):
                if trial.status not in ACTIVE_TRIAL_STATUSES:
                    continue
                key = (exp_id, trial.id)
                seen.add(key)
                if not trial.job:
                    self._relaunch_if_lost(trial)
                    continue
                try:
                    changed += self._check(platform, spec, trial)
                except KubesweepError as exc:
                    log.warning(
                        "cannot check the job: %s",
                        exc,
                        extra={"experiment_id": exp_id, "trial_id": trial.id},
                    )
        for table in (self._suspects, self._reasons, self._relaunched):
            for key in set(table) - seen:
                del table[key]
        return changed

    def _live_spec(self, exp_id: str) -> ExperimentSpec | None:
        """The spec of an experiment that started after the last sweep (None if it ended)."""
        experiment = self.ctx.store.get_experiment(exp_id)
        if experiment.status.is_terminal:
            return None
        spec = ExperimentSpec.model_validate(experiment.spec)
        self._specs[exp_id] = spec
        return spec

    def _follow(self, live: dict[str, list[ExperimentSpec]]) -> None:
        resync = self.ctx.settings.watch_resync_s
        for name in self._followed | set(live):
            try:
                self.ctx.platform(name).follow(live.get(name, []), self.notify, resync_s=resync)
            except KubesweepError as exc:
                log.warning("cannot follow the %s jobs: %s", name, exc)
        self._followed = set(live)

    def close(self) -> None:
        """Stop following every platform's jobs."""
        self._follow({})

    def _relaunch_if_lost(self, trial: TrialRecord) -> None:
        """The tuner (re)sends a trial's first launch; the watcher, which made the retry,
        sends a retried attempt's and sends it again if it got lost (a killed worker or
        watcher): the launch task is idempotent per attempt."""
        if trial.attempt < 2 or trial.status is not TrialStatus.WAITING:
            return
        key = (trial.experiment_id, trial.id)
        last = self._relaunched.get(key)
        if last is not None and time.monotonic() - last < RELAUNCH_AFTER_S:
            return
        self._relaunched[key] = time.monotonic()
        self._send_launch(trial.experiment_id, trial.id)

    # -- one trial -------------------------------------------------------------------------

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
        self._suspects.pop((trial.experiment_id, trial.id), None)
        if seen.status is TrialStatus.FAILED and seen.retryable:
            return self._retry(platform, spec, trial, seen.message)
        if seen.status is not None:
            if seen.status is TrialStatus.RUNNING and trial.status is TrialStatus.RUNNING:
                return 0
            return self._move(trial, seen.status, seen.message)
        return self._pending(platform, spec, trial, seen)

    def _pending(
        self, platform: Platform, spec: ExperimentSpec, trial: TrialRecord, seen: JobObservation
    ) -> int:
        """Show why the job waits; at the pending timeout retry it or fail the trial."""
        key = (trial.experiment_id, trial.id)
        if seen.message and self._reasons.get(key) != seen.message:
            self._reasons[key] = seen.message
            self.ctx.store.annotate_trial(
                trial.experiment_id,
                trial.id,
                "trial.launched",
                allowed_from=[TrialStatus.WAITING],
                fields={"message": seen.message},
                payload={"pending": seen.message, "attempt": trial.attempt},
            )
        timeout = platform.pending_timeout(spec)
        since = seen.pending_since or trial.launched
        if timeout is not None and since is not None and time.time() - since > timeout:
            why = f"pending for over {timeout:.0f} s: {seen.message or 'no reason reported'}"
            if seen.retryable:
                return self._retry(platform, spec, trial, why)
            platform.cancel(trial)
            return self._move(trial, TrialStatus.FAILED, why)
        return 0

    def _retry(self, platform: Platform, spec: ExperimentSpec, trial: TrialRecord, why: str) -> int:
        """A new attempt for a trial the infrastructure stopped, or FAILED at the limit."""
        limit = platform.max_attempts(spec)
        ids = {"experiment_id": trial.experiment_id, "trial_id": trial.id}
        if trial.attempt >= limit or trial.final is not None:
            # (A trial that already reported its final result is not run again.)
            platform.cancel(trial)
            return self._move(
                trial, TrialStatus.FAILED, f"{why} (attempt {trial.attempt} of {limit})"
            )
        message = f"attempt {trial.attempt} of {limit} ended by the cluster: {why}; retrying"
        # The store first: once the trial is on the next attempt, nothing of the old one can
        # report or be mistaken for it; then the old job goes, then the new launch.
        if not self.ctx.store.retry_trial(
            trial.experiment_id, trial.id, attempt=trial.attempt, message=message, reason=why
        ):
            return 0
        log.warning(message, extra=ids)
        platform.cancel(trial)
        key = (trial.experiment_id, trial.id)
        self._reasons.pop(key, None)
        self._relaunched[key] = time.monotonic()
        self._send_launch(trial.experiment_id, trial.id)
        return 1

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
            payload={"message": message, "attempt": trial.attempt},
        )
        if moved:
            log.info(
                "trial %s: %s",
                status.value,
                message,
                extra={"experiment_id": trial.experiment_id, "trial_id": trial.id},
            )
        return int(moved)


def _celery_sender(ctx: DispatcherContext) -> SendLaunch:
    app = None

    def send(exp_id: str, trial_id: str) -> None:
        nonlocal app
        if app is None:
            app = make_celery(ctx.settings.redis_url, name="kubesweep-watch")
        try:
            app.send_task(LAUNCH_TRIAL_TASK, args=[exp_id, trial_id], queue=DISPATCH_QUEUE)
        except Exception:  # the sweep sends it again
            log.exception(
                "could not queue the launch", extra={"experiment_id": exp_id, "trial_id": trial_id}
            )

    return send


def run(ctx: DispatcherContext, stop: threading.Event, watcher: Watcher | None = None) -> None:
    """Sweep every ``watch_interval_s`` and handle platform events in between, until ``stop``."""
    watcher = watcher or Watcher(ctx)
    interval = ctx.settings.watch_interval_s
    next_sweep = 0.0
    submitted = ""
    try:
        while not stop.is_set():
            try:
                # A new (or resumed) experiment: sweep now, so its namespace is followed
                # before its first job changes, not up to an interval later.
                latest = ctx.store.submissions_cursor()
                if latest != submitted:
                    submitted, next_sweep = latest, 0.0
            except Exception:  # (Redis down: the sweep's own failure is logged)
                log.debug("cannot read the submissions stream", exc_info=True)
            if time.monotonic() >= next_sweep:
                try:
                    watcher.sweep()
                except Exception:
                    log.exception("watch sweep failed; retrying")
                next_sweep = time.monotonic() + interval
            try:
                # Short waits: a stop and a new submission are noticed quickly.
                watcher.wait(min(0.25, max(0.0, next_sweep - time.monotonic())))
            except Exception:
                log.exception("handling a job change failed; the next sweep retries")
    finally:
        watcher.close()
