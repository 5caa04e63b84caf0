"""Recording metrics in Redis: one Lua call per report or per batch of reports.

The script is ``Store.record_metric``'s, looped over a batch: the same trial checks, the
same de-duplication members, the same events and trial fields, so a metric recorded here
and one recorded through the store de-duplicate against each other
(``tests/unit/test_collector_writer.py`` holds them equal).

Each request thread keeps its own Redis connection. Going through redis-py's connection
pool cost ~0.25 ms of CPU per report (locks, a readiness probe on every checkout, retry
wrappers), which was the largest share of the collector's time per report.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import NoScriptError

from kubesweep import keys
from kubesweep.errors import ConflictError, NotFoundError, TransientError
from kubesweep.messaging import TERMINAL_TRIAL_STATUSES, Event, EventType, MetricType
from kubesweep.records import default_metric

_TERMINAL = ",".join(sorted(TERMINAL_TRIAL_STATUSES))

# KEYS: trial hash, events, dedup set.  ARGV: attempt, terminal csv, then per metric:
# dedup member, event json, type, value json, default metric ('' = none).
# Returns -1 unknown trial, -2 another attempt, -3 finished, else one 1/0 per metric.
_RECORD = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return -1 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return -2 end
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then return -3 end end
local out = {}
for i = 3, #ARGV, 5 do
  if redis.call('SADD', KEYS[3], ARGV[i]) == 0 then
    out[#out + 1] = 0
  else
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[i + 1])
    if ARGV[i + 2] == 'FINAL' then
      redis.call('HSET', KEYS[1], 'final', ARGV[i + 3])
      if ARGV[i + 4] ~= '' then redis.call('HSET', KEYS[1], 'default_metric', ARGV[i + 4]) end
    else
      redis.call('HINCRBY', KEYS[1], 'intermediate_count', 1)
      redis.call('HSET', KEYS[1], 'last_intermediate', ARGV[i + 3])
    end
    out[#out + 1] = 1
  end
end
return out
"""


class StoreUnavailableError(TransientError):
    """Redis did not answer in time, refused the connection, or is out of memory."""


@dataclass(frozen=True)
class Metric:
    """One report's content once validated."""

    type: MetricType
    sequence: int
    value: Any


class MetricWriter:
    """Records batches of one trial attempt's metrics; safe to share between threads."""

    def __init__(self, client: redis.Redis, timeout: float) -> None:
        """Connect like ``client`` does, but give up on a reply after ``timeout`` seconds
        (then the report is answered 503 and its keeper retries)."""
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs, socket_timeout=timeout)
        self._sha = hashlib.sha1(_RECORD.encode()).hexdigest()  # noqa: S324 - Redis's name for it
        self._local = threading.local()

    def record(
        self, exp_id: str, trial_id: str, attempt: int, metrics: Sequence[Metric]
    ) -> list[bool]:
        """Record each metric once, all or none checked against the trial; one bool per
        metric, False for a duplicate. Raises NotFoundError, ConflictError (finished trial
        or another attempt) or StoreUnavailableError."""
        args: list[str] = [str(attempt), _TERMINAL]
        for metric in metrics:
            event_type: EventType = (
                "metric.final" if metric.type is MetricType.FINAL else "metric.intermediate"
            )
            event = Event(
                type=event_type,
                experiment_id=exp_id,
                trial_id=trial_id,
                payload={"sequence": metric.sequence, "value": metric.value, "attempt": attempt},
            )
            default = default_metric(metric.value)
            args += (
                f"{trial_id}:{attempt}:{metric.type.value}:{metric.sequence}",
                event.to_json(),
                metric.type.value,
                json.dumps(metric.value),
                "" if default is None else repr(default),
            )
        reply = self._call(
            [keys.trial(exp_id, trial_id), keys.events(exp_id), keys.dedup(exp_id)], args
        )
        if reply == -1:
            raise NotFoundError(f"trial {trial_id!r} of experiment {exp_id!r} does not exist")
        if reply == -2:
            raise ConflictError(f"trial {trial_id!r} is on another attempt; this report is stale")
        if reply == -3:
            raise ConflictError(f"trial {trial_id!r} has already finished")
        return [int(flag) == 1 for flag in reply]

    def _call(self, script_keys: list[str], args: list[str]) -> Any:
        connection = self._connection()
        try:
            try:
                return self._evalsha(connection, script_keys, args)
            except NoScriptError:
                # A restarted or flushed Redis has forgotten the script: load it once.
                connection.send_command("SCRIPT", "LOAD", _RECORD)
                connection.read_response()
                return self._evalsha(connection, script_keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The reply may be lost after the script ran: the caller retries, and the
            # de-duplication set makes that retry harmless.
            connection.disconnect()
            raise StoreUnavailableError(f"Redis did not answer: {type(exc).__name__}") from exc
        except redis.ResponseError as exc:
            # Inside a script the code comes after "Error running script ...: -". Redis
            # refuses a script's first write when out of memory, so nothing was written.
            text = str(exc)
            code = re.search(r"(?:^|-)(OOM|BUSY|LOADING|MASTERDOWN|READONLY)\b", text)
            if code is None:
                raise
            raise StoreUnavailableError(
                f"Redis is not accepting writes ({code.group(1)}); retry later"
            ) from exc

    def _evalsha(self, connection: Any, script_keys: list[str], args: list[str]) -> Any:
        connection.send_packed_command(
            [_pack(["EVALSHA", self._sha, str(len(script_keys)), *script_keys, *args])]
        )
        return connection.read_response()

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connection_class(**self._connection_kwargs)
            self._local.connection = connection
        return connection


def _pack(parts: list[str]) -> bytes:
    """One RESP command; redis-py's general packer cost ~20 us a report for 15 strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)
