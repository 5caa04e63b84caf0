"""The watcher: notices trials whose job vanished without reporting an end.

For local trials that is a keeper process that died (killed, OOM): the trial is
failed with a reason instead of staying RUNNING forever (NNI's behaviour)."""

from __future__ import annotations

import logging
import threading
import time

from kubesweep.config import ExperimentSpec
from kubesweep.errors import NotFoundError
from kubesweep.messaging import ACTIVE_TRIAL_STATUSES, TrialStatus
from kubesweep_dispatcher.context import DispatcherContext

log = logging.getLogger(__name__)
# A keeper reports its end just before exiting; give that report time to land.
GRACE_S = 3.0


def sweep_once(ctx: DispatcherContext, suspects: dict[tuple[str, str], float]) -> int:
    """Fail trials whose job has been gone for longer than the grace period."""
    failed = 0
    now = time.monotonic()
    seen: set[tuple[str, str]] = set()
    for exp_id in ctx.store.list_experiment_ids():
        try:
            experiment = ctx.store.get_experiment(exp_id)
        except NotFoundError:
            continue
        if experiment.status.is_terminal:
            continue
        platform = ctx.platform_for(ExperimentSpec.model_validate(experiment.spec))
        for trial in ctx.store.list_trials(exp_id):
            if trial.status not in ACTIVE_TRIAL_STATUSES or not trial.job:
                continue
            if platform.is_alive(trial) is not False:
                continue
            key = (exp_id, trial.id)
            seen.add(key)
            first = suspects.setdefault(key, now)
            if now - first < GRACE_S:
                continue
            if ctx.store.transition_trial(
                exp_id,
                trial.id,
                TrialStatus.FAILED,
                allowed_from=ACTIVE_TRIAL_STATUSES,
                fields={"message": "the trial's job ended without reporting (killed or lost)"},
            ):
                failed += 1
                log.warning(
                    "job vanished; trial failed",
                    extra={"experiment_id": exp_id, "trial_id": trial.id},
                )
    for key in list(suspects):
        if key not in seen:
            del suspects[key]
    return failed


def run(ctx: DispatcherContext, stop: threading.Event) -> None:
    suspects: dict[tuple[str, str], float] = {}
    while not stop.is_set():
        try:
            sweep_once(ctx, suspects)
        except Exception:
            log.exception("watch sweep failed; retrying")
        stop.wait(ctx.settings.watch_interval_s)
