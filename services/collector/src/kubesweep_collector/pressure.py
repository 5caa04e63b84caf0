"""Back-pressure: a bound on the reports being written to Redis at once.

When Redis slows down, request threads pile up waiting on it and, without a bound, every
further report would queue behind them until its keeper's HTTP timeout. With the bound,
reports over it wait a moment for a slot (a busy CPU frees one within milliseconds) and
are otherwise answered 429 with a ``Retry-After``, which keepers honour: nothing is
dropped, the data waits in the keepers (and their ``metrics.jsonl``) instead of in the
collector's memory, and the request threads left over keep answering. When a write has
been stuck for longer than that moment, Redis itself is slow, and reports are refused at
once rather than each waiting in vain.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class SaturatedError(Exception):
    """Too many reports are in flight; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the collector is saturated; retry after {retry_after} s")
        self.retry_after = retry_after


class InflightGate:
    """Admits at most ``limit`` writers at once; others wait up to ``patience`` seconds."""

    def __init__(self, limit: int, patience: float, retry_after: int) -> None:
        if limit < 1:
            raise ValueError(f"collector_max_inflight must be at least 1, got {limit}")
        self.limit = limit
        self.patience = patience
        self.retry_after = retry_after
        self.refused = 0
        self._cond = threading.Condition()
        self._started: dict[int, float] = {}
        self._ids = itertools.count()

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a slot for the ``with`` body; raises :class:`SaturatedError` if none frees."""
        ticket = self._enter()
        try:
            yield
        finally:
            with self._cond:
                del self._started[ticket]
                self._cond.notify()

    def _enter(self) -> int:
        with self._cond:
            if len(self._started) >= self.limit:
                now = time.monotonic()
                stuck = now - min(self._started.values()) > self.patience
                deadline = now + self.patience
                while len(self._started) >= self.limit:
                    left = deadline - time.monotonic()
                    if stuck or left <= 0:
                        self.refused += 1
                        raise SaturatedError(self.retry_after)
                    self._cond.wait(left)
            ticket = next(self._ids)
            self._started[ticket] = time.monotonic()
            return ticket

    @property
    def inflight(self) -> int:
        return len(self._started)
