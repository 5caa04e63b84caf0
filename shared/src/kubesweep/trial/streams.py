"""Reading the trial's output: teeing stdout/stderr to files and finding metrics in it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import IO, Any

from . import protocol

# Progress bars print megabytes without a newline; read in bounded pieces (a metric line
# is shorter than NNI's 1,000,000-character limit, so it still arrives whole).
_READ_LIMIT = 2 * 1024 * 1024
_NNI_LINE = re.compile(protocol.NNI_METRIC_PATTERN)


def tee(
    pipe: IO[bytes],
    file: IO[bytes],
    echo: IO[bytes] | None,
    on_line: Callable[[str], None],
) -> None:
    """Copy ``pipe`` line by line to ``file`` and ``echo`` until EOF, calling ``on_line``.

    A sink that fails (storage full, our own stdout closed) is dropped, but the pipe is
    always drained: a reader that stopped would block the trial on its next write.
    """
    sinks = [sink for sink in (file, echo) if sink is not None]
    with pipe:
        while True:
            raw = pipe.readline(_READ_LIMIT)
            if not raw:
                return
            for sink in list(sinks):
                try:
                    sink.write(raw)
                    sink.flush()
                except (OSError, ValueError):
                    sinks.remove(sink)
            on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))


def parse_nni_line(line: str, log: logging.Logger) -> tuple[str, Any] | None:
    """The ``(type, metric)`` in an NNI stdout line ``NNISDK_MEb'{…}'``, else None."""
    match = _NNI_LINE.search(line)
    if match is None:
        return None
    try:
        message = json.loads(match.group(1))
        kind = message["type"]
        value = message["value"]
        # NNI double-encodes: `value` is the metric dumped to a JSON string.
        metric = json.loads(value) if isinstance(value, str) else value
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignored a malformed NNISDK_MEb line (%s): %.200s", exc, line)
        return None
    if kind not in protocol.METRIC_TYPES:
        return None  # e.g. REQUEST_PARAMETER, meaningful only to multi-phase NNI
    return kind, metric


def parse_sdk_line(line: bytes, log: logging.Logger) -> tuple[str, Any] | None:
    """The ``(type, metric)`` in one line the SDK wrote to the metric pipe, else None."""
    try:
        message = json.loads(line.decode("utf-8"))
        kind = message["type"]
        metric = message["value"]
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignored a malformed report on the metric pipe (%s): %.200r", exc, line)
        return None
    if kind not in protocol.METRIC_TYPES:
        log.warning("ignored a report of unknown type %r", kind)
        return None
    return kind, metric


def read_metric_pipe(
    pipe: IO[bytes], on_metric: Callable[[str, Any], None], log: logging.Logger
) -> None:
    """Read SDK reports from ``pipe`` until every writer has closed it."""
    with pipe:
        for line in pipe:
            if line.strip():
                parsed = parse_sdk_line(line, log)
                if parsed is not None:
                    on_metric(*parsed)
