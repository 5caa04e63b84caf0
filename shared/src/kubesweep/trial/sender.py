"""Delivering reports to the collector, in order, on a thread of their own.

Reports go through one FIFO queue and one sender thread, so slow HTTP never blocks the pipe
readers and a status report queued after the final metric is delivered after it. Metrics
that queued up while an earlier report was in flight (a chatty trial, or a collector that
answered 429 and was waited for) go together in one batch request.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from . import protocol

_FIRST_DELAY = 0.2
_MAX_DELAY = 5.0
_HTTP_TIMEOUT = 10.0
_BODY_CHARS = 500
_RETRY_STATUSES = (429,)


class Sender:
    """POSTs JSON bodies to the collector with retries; :meth:`close` drains what is queued."""

    def __init__(
        self, base_url: str | None, token: str | None, timeout: float, log: logging.Logger
    ) -> None:
        self._base = base_url
        self._token = token
        self._timeout = timeout
        self._log = log
        self._queue: queue.Queue[tuple[str, dict[str, Any], bool] | None] = queue.Queue()
        self._drain_deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="kubesweep-sender", daemon=True)
        self.delivered = 0
        self.dropped = 0
        self._conn: http.client.HTTPConnection | None = None

    def start(self) -> None:
        self._thread.start()

    def post(self, path: str, body: dict[str, Any], *, batchable: bool = False) -> None:
        """Queue ``body`` for ``POST {collector}{path}``; a no-op without a collector.

        ``batchable`` marks a metric report: consecutive queued ones for the same path may go
        together to ``path + METRICS_BATCH_SUFFIX``."""
        if self._base is not None:
            self._queue.put((path, body, batchable))

    def close(self, drain_seconds: float) -> bool:
        """Deliver what is queued within ``drain_seconds``; True when the queue emptied."""
        if self._base is None or not self._thread.is_alive():
            return True
        self._drain_deadline = time.monotonic() + drain_seconds
        self._queue.put(None)
        self._thread.join(drain_seconds + _HTTP_TIMEOUT)
        return not self._thread.is_alive()

    def _run(self) -> None:
        # An item taken from the queue while gathering a batch, to be handled next (it may
        # be the closing None, hence the list).
        held: list[tuple[str, dict[str, Any], bool] | None] = []
        while True:
            item = held.pop() if held else self._queue.get()
            if item is None:
                return
            path, body, batchable = item
            bodies = [body]
            if batchable:
                held = self._gather(path, bodies)
            if len(bodies) == 1:
                ok = self._deliver(path, body)
            else:
                ok = self._deliver_batch(path, bodies)
            if ok:
                self.delivered += len(bodies)
            else:
                self.dropped += len(bodies)

    def _gather(
        self, path: str, bodies: list[dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any], bool] | None]:
        """Add the metrics queued right behind ``bodies[0]`` for the same path and attempt;
        returns ``[the first queued item that does not belong]`` or ``[]``."""
        chars = len(json.dumps(bodies[0]))
        while len(bodies) < protocol.MAX_BATCH_METRICS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return []
            if item is None or not item[2] or item[0] != path:
                return [item]
            body = item[1]
            chars += len(json.dumps(body))
            if body.get("attempt") != bodies[0].get("attempt") or chars > protocol.MAX_BATCH_CHARS:
                return [item]
            bodies.append(body)
        return []

    def _deliver_batch(self, path: str, bodies: list[dict[str, Any]]) -> bool:
        batch = {
            "attempt": bodies[0].get("attempt"),
            "metrics": [{k: v for k, v in b.items() if k != "attempt"} for b in bodies],
        }
        outcome = self._deliver(path + protocol.METRICS_BATCH_SUFFIX, batch, quiet_404=True)
        if outcome is not None:
            return outcome
        # A collector without the batch endpoint (older, mid-upgrade): one by one.
        return all([self._deliver(path, body) for body in bodies])

    def _deadline(self) -> float:
        deadline = time.monotonic() + self._timeout
        if self._drain_deadline is not None:
            deadline = min(deadline, self._drain_deadline)
        return deadline

    def _deliver(self, path: str, body: dict[str, Any], quiet_404: bool = False) -> bool | None:
        """True once delivered, False when given up on; None for a 404 if ``quiet_404``."""
        url = f"{self._base}{path}"
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        deadline = self._deadline()
        delay = _FIRST_DELAY
        attempt = 0
        while True:
            attempt += 1
            retry_after, problem = self._attempt(url, data)
            if problem is None:
                return True
            if quiet_404 and problem.startswith(("HTTP 404", "HTTP 405")):
                return None
            if retry_after is None:
                self._log.error("report to %s refused, dropped: %s", path, problem)
                return False
            # Jitter spreads the retries of many trials hitting one recovering collector.
            jitter = random.uniform(0.8, 1.0)  # noqa: S311 - not for security
            wait = max(delay * jitter, retry_after)
            if time.monotonic() + wait > deadline:
                self._log.error(
                    "report to %s dropped after %d attempts: %s (kept in metrics.jsonl "
                    "when it is a metric)",
                    path,
                    attempt,
                    problem,
                )
                return False
            self._log.warning("report to %s failed (%s); retrying in %.1f s", path, problem, wait)
            time.sleep(wait)
            delay = min(delay * 2, _MAX_DELAY)

    def _connection(self, url: str) -> http.client.HTTPConnection:
        # One kept-alive connection per keeper: a trial's reports skip the TCP handshake,
        # and urllib.request (with ssl and email) is not imported at start-up.
        parts = urlsplit(url)
        if self._conn is None:
            if parts.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=_HTTP_TIMEOUT
                )
            else:
                self._conn = http.client.HTTPConnection(
                    parts.hostname or "", parts.port, timeout=_HTTP_TIMEOUT
                )
        return self._conn

    def _attempt(self, url: str, data: bytes) -> tuple[float | None, str | None]:
        """One POST: ``(None, None)`` on success, ``(retry_after, why)`` to retry,
        ``(None, why)`` to give up."""
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn = self._connection(url)
            conn.request("POST", target, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (http.client.HTTPException, OSError) as exc:
            self._reset()
            return 0.0, f"{type(exc).__name__}: {exc}"
        if response.getheader("Connection", "").lower() == "close":
            self._reset()
        if response.status < 300:
            return None, None
        why = f"HTTP {response.status}: {raw.decode('utf-8', 'replace').strip()[:_BODY_CHARS]}"
        if response.status >= 500 or response.status in _RETRY_STATUSES:
            return _retry_after(response.getheader("Retry-After")), why
        return None, why

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); 0 if absent."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())
