"""Numbering metrics, keeping them on storage and handing them to the sender."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import IO, Any

from . import protocol
from .config import KeeperConfig
from .sender import Sender


class MetricForwarder:
    """Called with ``(type, metric)`` from every source, in arrival order.

    The keeper, not the trial, assigns ``sequence`` (intermediate results 0, 1, 2… in
    arrival order; FINAL always 0), so SDK reports and NNI stdout lines share one numbering
    and a restarted trial process cannot reuse a number.
    """

    def __init__(
        self, config: KeeperConfig, sender: Sender, record: IO[str], log: logging.Logger
    ) -> None:
        self._config = config
        self._sender = sender
        self._record = record
        self._log = log
        self._lock = threading.Lock()
        self._next_sequence = 0
        self._path = protocol.METRICS_PATH.format(
            experiment=config.experiment_id, trial=config.trial_id
        )
        self.forwarded = 0
        self.ignored = 0

    def __call__(self, kind: str, value: Any) -> None:
        if not self._config.primary:
            with self._lock:
                self.ignored += 1
            return
        with self._lock:
            sequence = 0
            if kind == protocol.PERIODICAL:
                sequence = self._next_sequence
            body = {
                "attempt": self._config.attempt,
                "type": kind,
                "sequence": sequence,
                "value": value,
            }
            try:
                line = json.dumps(dict(body, ts=round(time.time(), 3)), allow_nan=False)
            except ValueError as exc:  # NaN or infinity from an NNI stdout line
                self._log.error("dropped a %s metric that is not valid JSON: %s", kind, exc)
                return
            if kind == protocol.PERIODICAL:
                self._next_sequence += 1
            # Storage first: the metric survives even if the collector never answers.
            try:
                self._record.write(line + "\n")
                self._record.flush()
            except (OSError, ValueError) as exc:
                self._log.error("cannot append to %s: %s", protocol.METRICS_FILE, exc)
            self._sender.post(self._path, body, batchable=True)
            self.forwarded += 1
