"""Retrying storage calls that failed for a reason that may pass (NNI's ``uploadRetryCount``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kubesweep.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; waits ``backoff_s``, doubling up to ``max_backoff_s``."""

    attempts: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def run(
        self,
        operation: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run ``operation``; a `TransientError` it raises is retried, the last one re-raised.

        ``on_retry`` runs before each new attempt (e.g. to drop a broken connection)."""
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except TransientError as exc:
                if attempt >= self.attempts:
                    raise TransientError(
                        f"{what} failed after {attempt} attempt(s): {exc}"
                    ) from exc
                log.warning(
                    "%s failed (attempt %d of %d), retrying in %.2f s: %s",
                    what,
                    attempt,
                    self.attempts,
                    delay,
                    exc,
                )
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                if on_retry is not None:
                    on_retry()
        raise AssertionError("unreachable")  # pragma: no cover
