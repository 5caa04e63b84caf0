"""A Server-Sent-Events stream of an experiment's event log, for the web UI and scripts."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from kubesweep.errors import ConfigError
from kubesweep.httperrors import error_body
from kubesweep_dispatcher.api.common import ctx, known_id

bp = Blueprint("events", __name__, url_prefix="/api/v1/experiments")
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
# A connection holds a server thread; clients reconnect with Last-Event-ID and lose nothing.
MAX_CONNECTION_S = 300.0
KEEPALIVE_S = 15.0
RETRY_AFTER_S = 2


def follower_slots(threads: int) -> threading.BoundedSemaphore:
    """How many followed streams may be open at once. Each holds a server thread for
    minutes; without a cap a few browser tabs would leave no thread for other requests."""
    return threading.BoundedSemaphore(max(1, threads // 2))


def _slots() -> threading.BoundedSemaphore:
    slots: threading.BoundedSemaphore = current_app.extensions["kubesweep.event_followers"]
    return slots


@bp.get("/<exp_id>/events")
def stream_events(exp_id: str) -> Response:
    store = ctx().store
    store.get_experiment(known_id(exp_id, "experiment"))
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0-0"
    if not _STREAM_ID.fullmatch(after):
        raise ConfigError("must be an event id like 1700000000000-0", field="after")
    follow = request.args.get("follow", "true").lower() not in ("0", "false", "no")
    slots = _slots()
    if follow and not slots.acquire(blocking=False):
        message = "too many followed event streams are open; retry later, or read with follow=false"
        busy = jsonify(error_body("unavailable", message))
        busy.status_code = 503
        busy.headers["Retry-After"] = str(RETRY_AFTER_S)
        return busy
    once = threading.Lock()

    def release() -> None:
        # Called by the generator's end and by the server closing the response, whichever
        # comes first; a stream closed before its first chunk never runs the generator.
        if follow and once.acquire(blocking=False):
            slots.release()

    def generate() -> Iterator[str]:
        try:
            yield from _events(after, follow)
        finally:
            release()

    def _events(cursor: str, follow: bool) -> Iterator[str]:
        started = last_sent = time.monotonic()
        while True:
            entries = store.read_events(
                exp_id, cursor, count=500, block_ms=1000 if follow else None
            )
            for entry in entries:
                cursor = entry.id
                event = entry.event
                yield f"id: {entry.id}\nevent: {event.type}\ndata: {event.to_json()}\n\n"
                last_sent = time.monotonic()
            now = time.monotonic()
            if not follow and not entries:
                return
            if now - started > MAX_CONNECTION_S:
                yield "retry: 1000\n\n"
                return
            if now - last_sent > KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = now

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    response = Response(
        stream_with_context(generate()), mimetype="text/event-stream", headers=headers
    )
    response.call_on_close(release)
    return response
