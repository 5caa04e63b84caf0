"""The Celery application factory shared by the tuner (sender) and dispatcher (worker).

Delivery is at-least-once by design: tasks are acknowledged after they ran
(``acks_late``) and re-queued if the worker dies (``task_reject_on_worker_lost``);
every task is idempotent, so a redelivery is harmless.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from kubesweep.messaging import (
    CANCEL_TRIAL_TASK,
    CLEANUP_EXPERIMENT_TASK,
    DISPATCH_QUEUE,
    LAUNCH_TRIAL_TASK,
)

# Launch and cancel tasks finish in well under a second; a task unacknowledged for a
# minute belongs to a dead worker and is handed to another. The tuner's reconcile pass
# re-sends lost launches sooner than that.
VISIBILITY_TIMEOUT_S = 60


def make_celery(redis_url: str, *, name: str = "kubesweep") -> Celery:
    app = Celery(name, broker=redis_url)
    routes: dict[str, Any] = {
        task: {"queue": DISPATCH_QUEUE}
        for task in (LAUNCH_TRIAL_TASK, CANCEL_TRIAL_TASK, CLEANUP_EXPERIMENT_TASK)
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DISPATCH_QUEUE,
        task_routes=routes,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


def warm_up(app: Celery) -> None:
    """Pay Celery's lazy first-send costs (backend import, connection, queue declaration)
    at start-up instead of in the first trial's launch."""
    _ = app.backend
    with app.producer_or_acquire() as producer:
        producer.maybe_declare(app.amqp.queues[DISPATCH_QUEUE])
