"""Celery tasks of the dispatcher worker, registered by name (see kubesweep.messaging)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from kubesweep.celeryapp import make_celery
from kubesweep.errors import TransientError
from kubesweep.messaging import CANCEL_TRIAL_TASK, CLEANUP_EXPERIMENT_TASK, LAUNCH_TRIAL_TASK
from kubesweep_dispatcher import launcher
from kubesweep_dispatcher.context import DispatcherContext

# Every task is idempotent, so a dependency's transient failure is simply retried.
RETRY: dict[str, Any] = {
    "autoretry_for": (TransientError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


def create_worker_app(ctx: DispatcherContext) -> Celery:
    app = make_celery(ctx.settings.redis_url, name="kubesweep-dispatcher")

    @app.task(name=LAUNCH_TRIAL_TASK, **RETRY)  # type: ignore[untyped-decorator]
    def launch_trial(exp_id: str, trial_id: str) -> str:
        return launcher.launch_trial(ctx, exp_id, trial_id)

    @app.task(name=CANCEL_TRIAL_TASK, **RETRY)  # type: ignore[untyped-decorator]
    def cancel_trial(exp_id: str, trial_id: str) -> str:
        return launcher.cancel_trial(ctx, exp_id, trial_id)

    @app.task(name=CLEANUP_EXPERIMENT_TASK, **RETRY)  # type: ignore[untyped-decorator]
    def cleanup_experiment(exp_id: str) -> str:
        return launcher.cleanup_experiment(ctx, exp_id)

    return app
