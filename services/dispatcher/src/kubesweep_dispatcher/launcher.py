"""What the worker's tasks do: launch and cancel trials, idempotently."""

from __future__ import annotations

import logging
import time

from kubesweep.config import ExperimentSpec
from kubesweep.errors import ConfigError, NotFoundError, PermanentError
from kubesweep.messaging import ExperimentStatus, TrialStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.tokens import trial_token
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms import LaunchRequest
from kubesweep_dispatcher.staging import write_parameters

log = logging.getLogger(__name__)
CLAIM_TTL_MS = 30_000


def launch_trial(ctx: DispatcherContext, exp_id: str, trial_id: str) -> str:
    """Start a WAITING trial once. Returns what happened, for logs and tests."""
    ids = {"experiment_id": exp_id, "trial_id": trial_id}
    store = ctx.store
    try:
        trial = store.get_trial(exp_id, trial_id)
        experiment = store.get_experiment(exp_id)
    except NotFoundError:
        log.warning("launch for an unknown trial ignored", extra=ids)
        return "unknown"
    if trial.status is not TrialStatus.WAITING or trial.launched is not None:
        return "already-launched"
    if experiment.status not in (ExperimentStatus.RUNNING, ExperimentStatus.NO_MORE_TRIAL):
        store.transition_trial(
            exp_id,
            trial_id,
            TrialStatus.SYS_CANCELED,
            allowed_from=[TrialStatus.WAITING],
            fields={"message": f"experiment is {experiment.status.value}"},
        )
        return "experiment-not-running"
    if not store.claim_launch(exp_id, trial_id, trial.attempt, CLAIM_TTL_MS):
        return "claimed-elsewhere"
    return _launch_claimed(ctx, trial, experiment)


def _launch_claimed(
    ctx: DispatcherContext, trial: TrialRecord, experiment: ExperimentRecord
) -> str:
    """Stage the parameters, create the job and record it (this worker holds the claim)."""
    store, exp_id, trial_id = ctx.store, trial.experiment_id, trial.id
    ids = {"experiment_id": exp_id, "trial_id": trial_id}
    spec = ExperimentSpec.model_validate(experiment.spec)
    storage = ctx.storage_for(spec)
    platform = ctx.platform_for(spec)
    write_parameters(storage, exp_id, trial_id, trial.parameter_id, trial.parameters)
    request = LaunchRequest(
        spec=spec,
        trial=trial,
        storage=storage,
        token=trial_token(ctx.signing_key, exp_id, trial_id, trial.attempt),
        collector_url=ctx.settings.collector_url,
    )
    try:
        handle = platform.launch(request)
    except (ConfigError, PermanentError) as exc:
        # Retrying cannot help (e.g. the API server refused the manifest with 422, or a
        # foreign job holds the name). Without this the trial would stay WAITING forever
        # and hold a concurrency slot; FAILED lets the tuner go on and shows the reason.
        store.transition_trial(
            exp_id,
            trial_id,
            TrialStatus.FAILED,
            allowed_from=[TrialStatus.WAITING],
            fields={"message": f"launch failed: {exc}"},
            payload={"message": f"launch failed: {exc}"},
        )
        log.error("launch failed: %s", exc, extra=ids)
        return "launch-failed"
    recorded = store.annotate_trial(
        exp_id,
        trial_id,
        "trial.launched",
        allowed_from=[TrialStatus.WAITING, TrialStatus.RUNNING],
        fields={
            "launched": repr(time.time()),
            "job": handle,
            "storage_url": storage.url(layout.trial(exp_id, trial_id)),
        },
        payload={"job": handle, "platform": platform.name, "attempt": trial.attempt},
    )
    if not recorded:
        # Cancelled while we were starting it: stop what we started.
        platform.cancel(trial.model_copy(update={"job": handle}))
        return "cancelled-during-launch"
    log.info("launched as %s", handle, extra=ids)
    return "launched"


def cancel_trial(ctx: DispatcherContext, exp_id: str, trial_id: str) -> str:
    """Stop a trial's job; the caller has already recorded the trial's final status."""
    try:
        trial = ctx.store.get_trial(exp_id, trial_id)
        experiment = ctx.store.get_experiment(exp_id)
    except NotFoundError:
        return "unknown"
    if not trial.job:
        return "not-launched"
    platform = ctx.platform_for(ExperimentSpec.model_validate(experiment.spec))
    platform.cancel(trial)
    return "cancelled"


def cleanup_experiment(ctx: DispatcherContext, exp_id: str) -> str:
    """Delete what an ended experiment left on its platform (jobs, Secrets)."""
    try:
        experiment = ctx.store.get_experiment(exp_id)
    except NotFoundError:
        return "unknown"
    spec = ExperimentSpec.model_validate(experiment.spec)
    ctx.platform_for(spec).cleanup_experiment(exp_id, spec)
    return "cleaned"
