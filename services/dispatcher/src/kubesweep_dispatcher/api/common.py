"""What every API module needs: the dispatcher context, the Celery sender, id checks."""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import current_app

from kubesweep.errors import NotFoundError
from kubesweep.ids import is_valid_id
from kubesweep_dispatcher.context import DispatcherContext


def ctx() -> DispatcherContext:
    context: DispatcherContext = current_app.extensions["kubesweep.ctx"]
    return context


def celery() -> Celery:
    app: Celery = current_app.extensions["kubesweep.celery"]
    return app


def send(task: str, *args: Any) -> None:
    from kubesweep.messaging import DISPATCH_QUEUE

    celery().send_task(task, args=list(args), queue=DISPATCH_QUEUE)


def known_id(value: str, what: str) -> str:
    """Refuse ids that cannot exist before they reach Redis keys or storage paths."""
    if not is_valid_id(value):
        raise NotFoundError(f"{what} {value[:64]!r} does not exist")
    return value
