"""The Redis store: the single source of truth for experiments, trials and events.

Every state change is one Lua script that checks the current state, writes the
new one and appends the matching event to the experiment's stream, so the record
and the log can never disagree and a stale writer cannot overwrite a newer state.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from kubesweep import keys
from kubesweep.errors import ConflictError, NotFoundError
from kubesweep.messaging import (
    TERMINAL_TRIAL_STATUSES,
    TRIAL_STATUS_EVENTS,
    Event,
    EventType,
    ExperimentStatus,
    MetricType,
    TrialStatus,
)
from kubesweep.records import ExperimentRecord, TrialRecord, default_metric

_ID_ALPHABET = string.ascii_lowercase + string.digits
_TERMINAL = ",".join(sorted(TERMINAL_TRIAL_STATUSES))

# KEYS: record hash, events stream.  ARGV: allowed-from csv ('' = any), event json, field/value...
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, ''} end
if ARGV[1] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
  if not ok then return {0, cur} end
end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])
return {1, cur}
"""

# KEYS: trial hash, events, dedup set.  ARGV: attempt, dedup member, event json, type,
# final json, default metric ('' = none), terminal csv
_METRIC = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return -1 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return -2 end
for s in string.gmatch(ARGV[7], '[^,]+') do if s == cur then return -3 end end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'data', ARGV[3])
if ARGV[4] == 'FINAL' then
  redis.call('HSET', KEYS[1], 'final', ARGV[5])
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'default_metric', ARGV[6]) end
else
  redis.call('HINCRBY', KEYS[1], 'intermediate_count', 1)
  redis.call('HSET', KEYS[1], 'last_intermediate', ARGV[5])
end
return 1
"""

# KEYS: lease, trials zset, trial hash, events, seq.  ARGV: owner, max trials, trial id,
# event json (with SEQ placeholder), the placeholder (quoted, no pattern characters),
# field/value...
_CREATE_TRIAL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if tonumber(ARGV[2]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return -2 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
local seq = redis.call('INCR', KEYS[5]) - 1
redis.call('HSET', KEYS[3], 'seq', seq, unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], seq, ARGV[3])
local event = string.gsub(ARGV[4], ARGV[5], tostring(seq))
redis.call('XADD', KEYS[4], '*', 'data', event)
return seq
"""

# KEYS: trial hash, events.  ARGV: expected attempt, allowed-from csv, event json,
# field/value...  (a record from before attempts were stored counts as attempt 1)
_RETRY = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return -1 end
if (redis.call('HGET', KEYS[1], 'attempt') or '1') ~= ARGV[1] then return 0 end
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then ok = true end end
if not ok then return 0 end
redis.call('HDEL', KEYS[1], 'launched', 'job', 'started', 'exit_code', 'last_intermediate')
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('XADD', KEYS[2], '*', 'data', ARGV[3])
return 1
"""

# KEYS: lease.  ARGV: owner, ttl ms
_ACQUIRE_LEASE = """
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_id(length: int = 8) -> str:
    """A random id that is DNS-1035 safe: lowercase alphanumerics starting with a letter."""
    first = secrets.choice(string.ascii_lowercase)
    return first + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length - 1))


@dataclass(frozen=True)
class StreamEntry:
    """An event with its position in the stream."""

    id: str
    event: Event


class Store:
    """Typed access to kubesweep's Redis data. One instance per process is enough."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._transition = client.register_script(_TRANSITION)
        self._metric = client.register_script(_METRIC)
        self._create_trial = client.register_script(_CREATE_TRIAL)
        self._retry = client.register_script(_RETRY)
        self._acquire = client.register_script(_ACQUIRE_LEASE)
        self._release = client.register_script(_RELEASE_LEASE)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30))

    # experiments -------------------------------------------------------------------------

    def create_experiment(self, record: ExperimentRecord) -> None:
        event = Event(type="experiment.submitted", experiment_id=record.id, ts=record.created)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.experiment(record.id), mapping=record.to_hash())  # type: ignore[arg-type]
        pipe.zadd(keys.EXPERIMENTS, {record.id: record.created})
        pipe.xadd(keys.events(record.id), {"data": event.to_json()})
        pipe.xadd(keys.SUBMISSIONS, {"experiment_id": record.id}, maxlen=10_000, approximate=True)
        pipe.execute()

    def get_experiment(self, exp_id: str) -> ExperimentRecord:
        raw: dict[str, str] = self.redis.hgetall(keys.experiment(exp_id))  # type: ignore[assignment]
        if not raw:
            raise NotFoundError(f"experiment {exp_id!r} does not exist")
        return ExperimentRecord.from_hash(raw)

    def list_experiment_ids(self) -> list[str]:
        return list(self.redis.zrange(keys.EXPERIMENTS, 0, -1))  # type: ignore[arg-type]

    def transition_experiment(
        self,
        exp_id: str,
        status: ExperimentStatus,
        *,
        allowed_from: Iterable[ExperimentStatus] = (),
        event_type: EventType | None = None,
        message: str = "",
        fields: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Move the experiment to ``status`` if it is in ``allowed_from`` (any when empty)."""
        now = time.time()
        values: dict[str, str] = {"status": status.value, "updated": repr(now)}
        if message:
            values["message"] = message
        if status.is_terminal:
            values["ended"] = repr(now)
        values.update(fields or {})
        event = Event(
            type=event_type or "experiment.updated",
            experiment_id=exp_id,
            ts=now,
            payload={"status": status.value, "message": message, **(payload or {})},
        )
        applied, _ = self._run_transition(
            keys.experiment(exp_id), keys.events(exp_id), allowed_from, event, values
        )
        if applied < 0:
            raise NotFoundError(f"experiment {exp_id!r} does not exist")
        return applied == 1

    def update_experiment_spec(
        self, exp_id: str, spec: dict[str, Any], changes: dict[str, Any]
    ) -> None:
        """Replace the spec (e.g. a new concurrency) and log what changed."""
        event = Event(type="experiment.updated", experiment_id=exp_id, payload={"changes": changes})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            keys.experiment(exp_id),
            mapping={"spec": json.dumps(spec), "updated": repr(time.time())},
        )
        pipe.hincrby(keys.experiment(exp_id), "revision", 1)
        pipe.xadd(keys.events(exp_id), {"data": event.to_json()})
        pipe.execute()

    def append_event(self, event: Event) -> str:
        """Append an event that changes no record (e.g. imported results)."""
        return str(self.redis.xadd(keys.events(event.experiment_id), {"data": event.to_json()}))

    def announce(self, exp_id: str) -> None:
        """Wake tuners for an experiment that needs an owner again (e.g. resumed)."""
        self.redis.xadd(
            keys.SUBMISSIONS, {"experiment_id": exp_id}, maxlen=10_000, approximate=True
        )

    def delete_experiment(self, exp_id: str) -> None:
        """Remove every key of an experiment."""
        trial_ids: list[str] = self.redis.zrange(keys.trials(exp_id), 0, -1)  # type: ignore[assignment]
        names = [
            keys.experiment(exp_id),
            keys.trials(exp_id),
            keys.events(exp_id),
            keys.seq(exp_id),
            keys.dedup(exp_id),
            keys.tuner_lease(exp_id),
            *(keys.trial(exp_id, trial_id) for trial_id in trial_ids),
        ]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*names)
        pipe.zrem(keys.EXPERIMENTS, exp_id)
        pipe.execute()

    # trials --------------------------------------------------------------------------------

    def create_trial(
        self,
        *,
        owner: str,
        max_trials: int,
        exp_id: str,
        parameter_id: int,
        parameters: dict[str, Any],
        storage_url: str = "",
        basis: str = "",
    ) -> TrialRecord | None:
        """Record a new WAITING trial if ``owner`` still holds the experiment's tuner lease
        and the experiment has fewer than ``max_trials`` trials (0 = unlimited).

        ``basis`` is the id of the last event the tuner had applied when it chose these
        parameters; a replay uses it to rebuild the algorithm exactly."""
        trial_id = new_id()
        now = time.time()
        record = TrialRecord(
            id=trial_id,
            experiment_id=exp_id,
            seq=0,
            status=TrialStatus.WAITING,
            parameter_id=parameter_id,
            parameters=parameters,
            created=now,
            storage_url=storage_url,
        )
        fields = record.to_hash()
        del fields["seq"]
        # Unguessable, so a parameter value can never be mistaken for the placeholder.
        placeholder = f"__SEQ_{secrets.token_hex(8)}__"
        event = Event(
            type="trial.waiting",
            experiment_id=exp_id,
            trial_id=trial_id,
            ts=now,
            payload={
                "parameter_id": parameter_id,
                "parameters": parameters,
                "seq": placeholder,
                "basis": basis,
            },
        )
        flat = [item for pair in fields.items() for item in pair]
        seq = int(
            self._create_trial(
                keys=[
                    keys.tuner_lease(exp_id),
                    keys.trials(exp_id),
                    keys.trial(exp_id, trial_id),
                    keys.events(exp_id),
                    keys.seq(exp_id),
                ],
                args=[owner, max_trials, trial_id, event.to_json(), f'"{placeholder}"', *flat],
            )
        )
        if seq < 0:
            return None
        return record.model_copy(update={"seq": seq})

    def get_trial(self, exp_id: str, trial_id: str) -> TrialRecord:
        raw: dict[str, str] = self.redis.hgetall(keys.trial(exp_id, trial_id))  # type: ignore[assignment]
        if not raw:
            raise NotFoundError(f"trial {trial_id!r} of experiment {exp_id!r} does not exist")
        return TrialRecord.from_hash(raw)

    def list_trials(self, exp_id: str) -> list[TrialRecord]:
        ids: list[str] = self.redis.zrange(keys.trials(exp_id), 0, -1)  # type: ignore[assignment]
        pipe = self.redis.pipeline(transaction=False)
        for trial_id in ids:
            pipe.hgetall(keys.trial(exp_id, trial_id))
        return [TrialRecord.from_hash(raw) for raw in pipe.execute() if raw]

    def count_trials(self, exp_id: str) -> int:
        return int(self.redis.zcard(keys.trials(exp_id)))

    def transition_trial(
        self,
        exp_id: str,
        trial_id: str,
        status: TrialStatus,
        *,
        allowed_from: Iterable[TrialStatus],
        fields: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
        event_type: EventType | None = None,
    ) -> bool:
        """Atomically move a trial to ``status`` (recording ``fields``) and log the event.

        Returns False when the trial is no longer in one of ``allowed_from`` — another
        writer got there first, which callers treat as "already done"."""
        now = time.time()
        values = {"status": status.value}
        if status is TrialStatus.RUNNING:
            values["started"] = repr(now)
        if status.is_terminal:
            values["ended"] = repr(now)
        values.update({k: str(v) for k, v in (fields or {}).items() if v is not None})
        event = Event(
            type=event_type or TRIAL_STATUS_EVENTS[status],
            experiment_id=exp_id,
            trial_id=trial_id,
            ts=now,
            payload={"status": status.value, **(payload or {})},
        )
        applied, _ = self._run_transition(
            keys.trial(exp_id, trial_id), keys.events(exp_id), allowed_from, event, values
        )
        if applied < 0:
            raise NotFoundError(f"trial {trial_id!r} of experiment {exp_id!r} does not exist")
        return applied == 1

    def annotate_trial(
        self,
        exp_id: str,
        trial_id: str,
        event_type: EventType,
        *,
        allowed_from: Iterable[TrialStatus],
        fields: dict[str, Any],
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Record fields and an event without changing the status (e.g. ``trial.launched``)."""
        values = {k: str(v) for k, v in fields.items() if v is not None}
        event = Event(
            type=event_type, experiment_id=exp_id, trial_id=trial_id, payload=payload or {}
        )
        applied, _ = self._run_transition(
            keys.trial(exp_id, trial_id), keys.events(exp_id), allowed_from, event, values
        )
        if applied < 0:
            raise NotFoundError(f"trial {trial_id!r} of experiment {exp_id!r} does not exist")
        return applied == 1

    def retry_trial(
        self, exp_id: str, trial_id: str, *, attempt: int, message: str, reason: str = ""
    ) -> bool:
        """Start attempt ``attempt + 1`` of an active trial whose attempt ``attempt`` was lost
        to the infrastructure (an eviction, an image that cannot be pulled): back to WAITING,
        un-launched, with no job and no intermediate results, and a ``trial.retrying`` event.

        Returns False when the trial has ended or is no longer on ``attempt`` (someone else
        retried or finished it first). Reports of the old attempt are refused from now on:
        metrics and the collector check the attempt."""
        now = time.time()
        event = Event(
            type="trial.retrying",
            experiment_id=exp_id,
            trial_id=trial_id,
            ts=now,
            payload={
                "status": TrialStatus.WAITING.value,
                "attempt": attempt + 1,
                "previous_attempt": attempt,
                "reason": reason,
                "message": message,
            },
        )
        values = {
            "status": TrialStatus.WAITING.value,
            "attempt": str(attempt + 1),
            "message": message,
            "intermediate_count": "0",
        }
        flat = [item for pair in values.items() for item in pair]
        allowed = ",".join(s.value for s in (TrialStatus.WAITING, TrialStatus.RUNNING))
        applied = int(
            self._retry(
                keys=[keys.trial(exp_id, trial_id), keys.events(exp_id)],
                args=[str(attempt), allowed, event.to_json(), *flat],
            )
        )
        if applied < 0:
            raise NotFoundError(f"trial {trial_id!r} of experiment {exp_id!r} does not exist")
        return applied == 1

    def claim_launch(self, exp_id: str, trial_id: str, attempt: int, ttl_ms: int) -> bool:
        """Let one worker at a time launch a trial attempt; the claim expires by itself."""
        key = keys.launch_claim(exp_id, trial_id, attempt)
        return bool(self.redis.set(key, "1", nx=True, px=ttl_ms))

    def record_metric(
        self,
        exp_id: str,
        trial_id: str,
        *,
        attempt: int,
        metric_type: MetricType,
        sequence: int,
        value: Any,
    ) -> bool:
        """Append a metric once. Returns False for a duplicate; raises for a trial that is
        unknown, finished, or on another attempt."""
        event_type: EventType = (
            "metric.final" if metric_type is MetricType.FINAL else "metric.intermediate"
        )
        event = Event(
            type=event_type,
            experiment_id=exp_id,
            trial_id=trial_id,
            payload={"sequence": sequence, "value": value, "attempt": attempt},
        )
        default = default_metric(value)
        member = f"{trial_id}:{attempt}:{metric_type.value}:{sequence}"
        result = int(
            self._metric(
                keys=[keys.trial(exp_id, trial_id), keys.events(exp_id), keys.dedup(exp_id)],
                args=[
                    str(attempt),
                    member,
                    event.to_json(),
                    metric_type.value,
                    json.dumps(value),
                    "" if default is None else repr(default),
                    _TERMINAL,
                ],
            )
        )
        if result == -1:
            raise NotFoundError(f"trial {trial_id!r} of experiment {exp_id!r} does not exist")
        if result == -2:
            raise ConflictError(f"trial {trial_id!r} is on another attempt; this report is stale")
        if result == -3:
            raise ConflictError(f"trial {trial_id!r} has already finished")
        return result == 1

    # events --------------------------------------------------------------------------------

    def read_events(
        self, exp_id: str, after: str = "0-0", *, count: int = 500, block_ms: int | None = None
    ) -> list[StreamEntry]:
        reply: Any = self.redis.xread({keys.events(exp_id): after}, count=count, block=block_ms)
        entries: list[StreamEntry] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                entries.append(StreamEntry(entry_id, Event.from_json(fields["data"])))
        return entries

    def read_many(
        self,
        cursors: dict[str, str],
        *,
        submissions_after: str | None = None,
        count: int = 1000,
        block_ms: int | None = None,
    ) -> tuple[list[tuple[str, StreamEntry]], str | None]:
        """Read several experiments' streams at once: ``(experiment id, entry)`` in order.

        With ``submissions_after`` the read also wakes for new experiments; the second
        value is then the submissions cursor to pass next time (None when nothing new)."""
        streams = {keys.events(exp_id): after for exp_id, after in cursors.items()}
        if submissions_after is not None:
            streams[keys.SUBMISSIONS] = submissions_after
        if not streams:
            return [], None
        reply: Any = self.redis.xread(streams, count=count, block=block_ms)  # type: ignore[arg-type]
        out: list[tuple[str, StreamEntry]] = []
        submissions: str | None = None
        for stream, items in reply or []:
            if stream == keys.SUBMISSIONS:
                submissions = items[-1][0]
                continue
            exp_id = stream.split(":")[2]
            for entry_id, fields in items:
                out.append((exp_id, StreamEntry(entry_id, Event.from_json(fields["data"]))))
        return out, submissions

    def submissions_cursor(self) -> str:
        """The id of the latest submission, to wait for newer ones."""
        last: Any = self.redis.xrevrange(keys.SUBMISSIONS, count=1)
        return str(last[0][0]) if last else "0-0"

    def experiment_statuses(self, exp_ids: Sequence[str]) -> list[ExperimentStatus | None]:
        """The status of each experiment, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for exp_id in exp_ids:
            pipe.hget(keys.experiment(exp_id), "status")
        return [None if raw is None else ExperimentStatus(str(raw)) for raw in pipe.execute()]

    def experiment_status(self, exp_id: str) -> ExperimentStatus | None:
        raw = self.redis.hget(keys.experiment(exp_id), "status")
        return None if raw is None else ExperimentStatus(str(raw))

    # leases --------------------------------------------------------------------------------

    def acquire_lease(self, exp_id: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew the tuner lease on an experiment."""
        return bool(self._acquire(keys=[keys.tuner_lease(exp_id)], args=[owner, ttl_ms]))

    def release_lease(self, exp_id: str, owner: str) -> None:
        self._release(keys=[keys.tuner_lease(exp_id)], args=[owner])

    # helpers -------------------------------------------------------------------------------

    def _run_transition(
        self,
        record_key: str,
        events_key: str,
        allowed_from: Iterable[Any],
        event: Event,
        values: dict[str, str],
    ) -> tuple[int, str]:
        allowed = ",".join(str(getattr(s, "value", s)) for s in allowed_from)
        flat: Sequence[str] = [item for pair in values.items() for item in pair]
        applied, previous = self._transition(
            keys=[record_key, events_key], args=[allowed, event.to_json(), *flat]
        )
        return int(applied), str(previous)
