"""The tuner service loop: take experiments by lease, follow their event streams,
and let each `ExperimentRun` decide."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from kubesweep.errors import ConfigError
from kubesweep.messaging import ExperimentStatus
from kubesweep.store import Store
from kubesweep_tuner.custom import CustomAlgorithmError
from kubesweep_tuner.experiment import ExperimentRun, TaskSender
from kubesweep_tuner.settings import TunerSettings

log = logging.getLogger(__name__)


class TunerService:
    """Owns experiments through renewable Redis leases; several replicas share the work."""

    def __init__(self, settings: TunerSettings, store: Store, tasks: TaskSender) -> None:
        self.settings, self.store, self.tasks = settings, store, tasks
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.runs: dict[str, ExperimentRun] = {}
        self._next_scan = 0.0
        self._next_renew = 0.0
        self._submissions = store.submissions_cursor()

    def run(self, stop: threading.Event) -> None:
        log.info("tuner %s started", self.owner)
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("tuner step failed; retrying")
                stop.wait(1.0)
        for exp_id in list(self.runs):
            self.store.release_lease(exp_id, self.owner)

    def step(self) -> None:
        now = time.monotonic()
        if now >= self._next_renew:
            self._renew()
            self._next_renew = now + self.settings.tuner_lease_ms / 3000
        if now >= self._next_scan:
            self._scan()
            self._next_scan = now + self.settings.tuner_scan_interval_s
        cursors = {exp_id: run.cursor for exp_id, run in self.runs.items()}
        entries, submitted = self.store.read_many(
            cursors, submissions_after=self._submissions, block_ms=200
        )
        for exp_id, entry in entries:
            if exp_id in self.runs:
                try:
                    self.runs[exp_id].apply(entry)
                except CustomAlgorithmError as exc:
                    self._fail(exp_id, exc)
        if submitted is not None:
            self._submissions = submitted
            self._scan()
        for exp_id, run in list(self.runs.items()):
            try:
                run.tick()
            except CustomAlgorithmError as exc:
                self._fail(exp_id, exc)
                continue
            if run.finished:
                self._drop(exp_id)

    def _fail(self, exp_id: str, exc: Exception) -> None:
        """End an experiment whose custom algorithm raised; other experiments go on."""
        log.error("custom algorithm failed: %s", exc, extra={"experiment_id": exp_id})
        self.store.transition_experiment(
            exp_id,
            ExperimentStatus.ERROR,
            event_type="experiment.failed",
            message=str(exc),
            allowed_from=[s for s in ExperimentStatus if not s.is_terminal],
        )
        run = self.runs.get(exp_id)
        if run is not None:
            for trial_id in run.active:
                run.cancel(trial_id, "the custom algorithm failed")
        self._drop(exp_id)

    def _scan(self) -> None:
        candidates = [e for e in self.store.list_experiment_ids() if e not in self.runs]
        statuses = self.store.experiment_statuses(candidates)
        for exp_id, status in zip(candidates, statuses, strict=True):
            if status not in (ExperimentStatus.RUNNING, ExperimentStatus.NO_MORE_TRIAL):
                continue
            if self.store.acquire_lease(exp_id, self.owner, self.settings.tuner_lease_ms):
                self._adopt(exp_id)

    def _adopt(self, exp_id: str) -> None:
        try:
            run = ExperimentRun(
                self.store,
                self.tasks,
                exp_id,
                self.owner,
                self.settings.tuner_relaunch_after_s,
                allow_custom=self.settings.tuner_allow_custom_algorithms,
            )
        except (ConfigError, CustomAlgorithmError) as exc:
            self.store.transition_experiment(
                exp_id, ExperimentStatus.ERROR, event_type="experiment.failed", message=str(exc)
            )
            self.store.release_lease(exp_id, self.owner)
            log.error("cannot tune: %s", exc, extra={"experiment_id": exp_id})
            return
        # Rebuild the algorithm from everything that happened before we took over.
        history = []
        after = "0-0"
        while entries := self.store.read_events(exp_id, after, count=1000):
            history.extend(entries)
            after = entries[-1].id
        self.runs[exp_id] = run
        try:
            run.replay(history)
        except CustomAlgorithmError as exc:
            self._fail(exp_id, exc)
            return
        log.info("took over experiment", extra={"experiment_id": exp_id})

    def _renew(self) -> None:
        for exp_id in list(self.runs):
            if not self.store.acquire_lease(exp_id, self.owner, self.settings.tuner_lease_ms):
                log.warning("lost the lease", extra={"experiment_id": exp_id})
                del self.runs[exp_id]

    def _drop(self, exp_id: str) -> None:
        self.runs.pop(exp_id, None)
        self.store.release_lease(exp_id, self.owner)
