"""A Server-Sent-Events stream of an experiment's event log, for the web UI and scripts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context

from kubesweep.errors import ConfigError
from kubesweep_dispatcher.api.common import ctx, known_id

bp = Blueprint("events", __name__, url_prefix="/api/v1/experiments")
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
# A connection holds a server thread; clients reconnect with Last-Event-ID and lose nothing.
MAX_CONNECTION_S = 300.0
KEEPALIVE_S = 15.0


@bp.get("/<exp_id>/events")
def stream_events(exp_id: str) -> Response:
    store = ctx().store
    store.get_experiment(known_id(exp_id, "experiment"))
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0-0"
    if not _STREAM_ID.fullmatch(after):
        raise ConfigError("must be an event id like 1700000000000-0", field="after")
    follow = request.args.get("follow", "true").lower() not in ("0", "false", "no")

    def generate() -> Iterator[str]:
        cursor = after
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
    return Response(stream_with_context(generate()), mimetype="text/event-stream", headers=headers)
