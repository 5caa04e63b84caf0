"""The collector behind a real HTTP server on loopback, against the real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from kubesweep.cli.embedded import free_port
from kubesweep.messaging import ExperimentStatus, TrialStatus
from kubesweep.records import ExperimentRecord, TrialRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token
from kubesweep_collector.app import create_app
from kubesweep_collector.settings import CollectorSettings

SIGNING_KEY = "collector-test-signing-key-5ecr3t"
EXP = "exp1"
MAX_BODY = 2048
MAX_BATCH = 5


@dataclass
class Client:
    """Posts reports and remembers every response body, to look for leaked secrets."""

    base: str
    bodies: list[str] = field(default_factory=list)

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if data is None:
            response = requests.post(self.base + path, json=body, headers=sent, timeout=10)
        else:
            sent.setdefault("Content-Type", "application/json")
            response = requests.post(self.base + path, data=data, headers=sent, timeout=10)
        self.bodies.append(response.text)
        return response


def _serve(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def _settings(redis_url: str) -> CollectorSettings:
    return CollectorSettings(
        signing_key=SIGNING_KEY,  # type: ignore[arg-type]
        redis_url=redis_url,
        collector_max_body_bytes=MAX_BODY,
        collector_max_batch=MAX_BATCH,
    )


@pytest.fixture
def client(store: Store, redis_url: str) -> Iterator[Client]:
    app = create_app(_settings(redis_url), store)
    for base in _serve(app):
        c = Client(base)
        yield c
        for body in c.bodies:
            assert SIGNING_KEY not in body


@pytest.fixture
def trial(store: Store) -> TrialRecord:
    store.create_experiment(
        ExperimentRecord(id=EXP, spec={}, status=ExperimentStatus.RUNNING, created=1.0, updated=1.0)
    )
    assert store.acquire_lease(EXP, "tuner", 60_000)
    record = store.create_trial(
        owner="tuner", max_trials=0, exp_id=EXP, parameter_id=0, parameters={"x": 1}
    )
    assert record is not None
    return record


def _token(trial: TrialRecord, attempt: int = 1) -> str:
    return trial_token(SIGNING_KEY, trial.experiment_id, trial.id, attempt)


def _metrics(trial: TrialRecord) -> str:
    return f"/api/v1/trials/{trial.experiment_id}/{trial.id}/metrics"


def _status(trial: TrialRecord) -> str:
    return f"/api/v1/trials/{trial.experiment_id}/{trial.id}/status"


def _event_types(store: Store) -> list[str]:
    return [entry.event.type for entry in store.read_events(EXP)]


FINAL = {"attempt": 1, "type": "FINAL", "sequence": 0, "value": 0.75}


# metrics -------------------------------------------------------------------------------------


def test_metric_accepted_then_duplicate(client: Client, store: Store, trial: TrialRecord) -> None:
    first = client.post(_metrics(trial), FINAL, token=_token(trial))
    assert first.status_code == 201
    assert first.json() == {"accepted": True}
    again = client.post(_metrics(trial), FINAL, token=_token(trial))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["accepted"] is False
    assert _event_types(store).count("metric.final") == 1
    recorded = store.get_trial(EXP, trial.id)
    assert recorded.final == 0.75
    assert recorded.default_metric == 0.75


def test_periodical_metrics(client: Client, store: Store, trial: TrialRecord) -> None:
    for seq in range(3):
        reply = client.post(
            _metrics(trial),
            {"attempt": 1, "type": "PERIODICAL", "sequence": seq, "value": seq / 10},
            token=_token(trial),
        )
        assert reply.status_code == 201
    recorded = store.get_trial(EXP, trial.id)
    assert recorded.intermediate_count == 3
    assert recorded.last_intermediate == 0.2
    assert recorded.final is None


def test_dict_metric_with_numeric_default(client: Client, store: Store, trial: TrialRecord) -> None:
    value = {"default": 0.5, "precision": 0.9}
    reply = client.post(
        _metrics(trial),
        {"attempt": 1, "type": "FINAL", "sequence": 0, "value": value},
        token=_token(trial),
    )
    assert reply.status_code == 201
    recorded = store.get_trial(EXP, trial.id)
    assert recorded.final == value
    assert recorded.default_metric == 0.5
    assert store.read_events(EXP)[-1].event.payload["value"] == value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"attempt": 1, "type": "FINAL", "sequence": 0, "value": "high"}, "value"),
        ({"attempt": 1, "type": "FINAL", "sequence": 0, "value": {"acc": 1}}, "value"),
        ({"attempt": 1, "type": "FINAL", "sequence": 0, "value": {"default": "x"}}, "value"),
        ({"attempt": 1, "type": "FINAL", "sequence": 0, "value": True}, "value"),
        ({"attempt": 1, "type": "SOMETIMES", "sequence": 0, "value": 1}, "type"),
        ({"attempt": 0, "type": "FINAL", "sequence": 0, "value": 1}, "attempt"),
        ({"attempt": 1, "type": "FINAL", "sequence": -1, "value": 1}, "sequence"),
        ({"attempt": 1, "type": "FINAL", "value": 1}, "sequence"),
        ({**FINAL, "extra": 1}, "extra"),
    ],
)
def test_bad_metric_body_is_400_with_field(
    client: Client, store: Store, trial: TrialRecord, body: dict[str, Any], field: str
) -> None:
    before = _event_types(store)
    reply = client.post(_metrics(trial), body, token=_token(trial))
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert _event_types(store) == before


def test_non_finite_metric_is_400(client: Client, trial: TrialRecord) -> None:
    reply = client.post(
        _metrics(trial),
        data=b'{"attempt": 1, "type": "FINAL", "sequence": 0, "value": NaN}',
        token=_token(trial),
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == "value"


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_body_that_is_not_a_json_object_is_400(
    client: Client, trial: TrialRecord, data: bytes
) -> None:
    reply = client.post(_metrics(trial), data=data, token=_token(trial))
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_input"


def test_metric_for_finished_trial_is_409(client: Client, store: Store, trial: TrialRecord) -> None:
    store.transition_trial(EXP, trial.id, TrialStatus.SUCCEEDED, allowed_from=[])
    before = _event_types(store)
    reply = client.post(_metrics(trial), FINAL, token=_token(trial))
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "conflict"
    assert _event_types(store) == before


def test_metric_for_another_attempt_is_409(
    client: Client, store: Store, trial: TrialRecord
) -> None:
    reply = client.post(_metrics(trial), {**FINAL, "attempt": 2}, token=_token(trial, 2))
    assert reply.status_code == 409
    assert store.get_trial(EXP, trial.id).final is None


def test_metric_for_unknown_trial_is_404(client: Client, store: Store, trial: TrialRecord) -> None:
    ghost = trial.model_copy(update={"id": "ghost1"})
    reply = client.post(_metrics(ghost), FINAL, token=_token(ghost))
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"


# status --------------------------------------------------------------------------------------


def test_status_running_then_succeeded(client: Client, store: Store, trial: TrialRecord) -> None:
    running = client.post(_status(trial), {"attempt": 1, "status": "RUNNING"}, token=_token(trial))
    assert running.status_code == 201
    assert running.json() == {"accepted": True}
    assert store.get_trial(EXP, trial.id).status is TrialStatus.RUNNING

    done = client.post(
        _status(trial),
        {"attempt": 1, "status": "SUCCEEDED", "exit_code": 0, "message": "ok"},
        token=_token(trial),
    )
    assert done.status_code == 201
    recorded = store.get_trial(EXP, trial.id)
    assert recorded.status is TrialStatus.SUCCEEDED
    assert recorded.exit_code == 0
    assert recorded.message == "ok"
    assert recorded.ended is not None
    events = [e.event for e in store.read_events(EXP) if e.event.trial_id == trial.id]
    assert [e.type for e in events] == ["trial.waiting", "trial.running", "trial.succeeded"]
    assert events[-1].payload["exit_code"] == 0


def test_status_failed_records_exit_code(client: Client, store: Store, trial: TrialRecord) -> None:
    reply = client.post(
        _status(trial),
        {"attempt": 1, "status": "FAILED", "exit_code": 2, "message": "Traceback"},
        token=_token(trial),
    )
    assert reply.status_code == 201
    recorded = store.get_trial(EXP, trial.id)
    assert (recorded.status, recorded.exit_code) == (TrialStatus.FAILED, 2)
    assert _event_types(store)[-1] == "trial.failed"


def test_status_for_another_attempt_is_409(
    client: Client, store: Store, trial: TrialRecord
) -> None:
    before = _event_types(store)
    reply = client.post(_status(trial), {"attempt": 2, "status": "RUNNING"}, token=_token(trial, 2))
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "conflict"
    assert store.get_trial(EXP, trial.id).status is TrialStatus.WAITING
    assert _event_types(store) == before


def test_success_after_cancel_is_not_applied(
    client: Client, store: Store, trial: TrialRecord
) -> None:
    assert store.transition_trial(
        EXP, trial.id, TrialStatus.USER_CANCELED, allowed_from=[TrialStatus.WAITING]
    )
    before = _event_types(store)
    reply = client.post(
        _status(trial), {"attempt": 1, "status": "SUCCEEDED", "exit_code": 0}, token=_token(trial)
    )
    assert reply.status_code == 200
    assert reply.json() == {"accepted": False, "status": "USER_CANCELED"}
    recorded = store.get_trial(EXP, trial.id)
    assert recorded.status is TrialStatus.USER_CANCELED
    assert recorded.exit_code is None
    assert _event_types(store) == before


def test_status_not_a_keeper_status_is_400(client: Client, trial: TrialRecord) -> None:
    reply = client.post(
        _status(trial), {"attempt": 1, "status": "USER_CANCELED"}, token=_token(trial)
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == "status"


# authentication ------------------------------------------------------------------------------


def test_token_for_another_trial_is_401(client: Client, store: Store, trial: TrialRecord) -> None:
    other = store.create_trial(
        owner="tuner", max_trials=0, exp_id=EXP, parameter_id=1, parameters={}
    )
    assert other is not None
    before = _event_types(store)
    for path, body in (
        (_metrics(trial), FINAL),
        (_status(trial), {"attempt": 1, "status": "RUNNING"}),
    ):
        reply = client.post(path, body, token=_token(other))
        assert reply.status_code == 401
        assert reply.headers["WWW-Authenticate"] == "Bearer"
        assert reply.json()["error"]["code"] == "unauthorised"
    assert _event_types(store) == before
    assert store.get_trial(EXP, trial.id).status is TrialStatus.WAITING


def test_token_for_another_attempt_or_key_is_401(client: Client, trial: TrialRecord) -> None:
    wrong_attempt = client.post(_metrics(trial), FINAL, token=_token(trial, 2))
    assert wrong_attempt.status_code == 401
    forged = trial_token("another-key", EXP, trial.id, 1)
    assert client.post(_metrics(trial), FINAL, token=forged).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}],
)
def test_missing_token_is_401_with_challenge(
    client: Client, store: Store, trial: TrialRecord, headers: dict[str, str]
) -> None:
    reply = client.post(_metrics(trial), FINAL, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert store.get_trial(EXP, trial.id).final is None


def test_bearer_scheme_is_case_insensitive(client: Client, trial: TrialRecord) -> None:
    reply = client.post(
        _metrics(trial), FINAL, headers={"Authorization": f"bearer {_token(trial)}"}
    )
    assert reply.status_code == 201


# batches -------------------------------------------------------------------------------------


def _batch(trial: TrialRecord) -> str:
    return _metrics(trial) + "/batch"


def _periodicals(*sequences: int) -> list[dict[str, Any]]:
    return [{"type": "PERIODICAL", "sequence": s, "value": s / 10} for s in sequences]


def test_batch_records_each_metric_once(client: Client, store: Store, trial: TrialRecord) -> None:
    final = {"type": "FINAL", "sequence": 0, "value": 0.75}
    body = {"attempt": 1, "metrics": [*_periodicals(0, 1, 2), final]}
    first = client.post(_batch(trial), body, token=_token(trial))
    assert (first.status_code, first.json()) == (201, {"accepted": 4, "duplicates": 0})
    again = client.post(
        _batch(trial), {"attempt": 1, "metrics": _periodicals(2, 3)}, token=_token(trial)
    )
    assert (again.status_code, again.json()) == (201, {"accepted": 1, "duplicates": 1})
    same = client.post(
        _batch(trial), {"attempt": 1, "metrics": _periodicals(3)}, token=_token(trial)
    )
    assert (same.status_code, same.json()) == (200, {"accepted": 0, "duplicates": 1})
    recorded = store.get_trial(EXP, trial.id)
    assert (recorded.intermediate_count, recorded.last_intermediate) == (4, 0.3)
    assert recorded.final == 0.75
    sequences = [
        e.event.payload["sequence"]
        for e in store.read_events(EXP)
        if e.event.type.startswith("metric.")
    ]
    assert sequences == [0, 1, 2, 0, 3]  # in the batch's order; the final's sequence is 0


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        ([], "metrics"),
        (_periodicals(*range(MAX_BATCH + 1)), "metrics"),
        (
            [*_periodicals(0), {"type": "PERIODICAL", "sequence": 1, "value": "x"}],
            "metrics.1.value",
        ),
        ([{"type": "PERIODICAL", "sequence": 1, "value": 1, "attempt": 1}], "metrics.0.attempt"),
    ],
)
def test_bad_batch_is_400_with_field_and_records_nothing(
    client: Client, store: Store, trial: TrialRecord, metrics: list[dict[str, Any]], field: str
) -> None:
    reply = client.post(_batch(trial), {"attempt": 1, "metrics": metrics}, token=_token(trial))
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == field
    assert store.get_trial(EXP, trial.id).intermediate_count == 0


def test_batch_needs_the_attempts_token(client: Client, store: Store, trial: TrialRecord) -> None:
    body = {"attempt": 1, "metrics": _periodicals(0)}
    assert client.post(_batch(trial), body, token=_token(trial, attempt=2)).status_code == 401
    assert client.post(_batch(trial), body).status_code == 401
    store.transition_trial(EXP, trial.id, TrialStatus.FAILED, allowed_from=[TrialStatus.WAITING])
    assert client.post(_batch(trial), body, token=_token(trial)).status_code == 409


# ids and limits ------------------------------------------------------------------------------


@pytest.fixture
def no_redis_client(redis_url: str) -> Iterator[Client]:
    """A collector whose Redis is a closed port: any Redis call would fail with a 500."""
    dead = Store.from_url(f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(_settings(redis_url), dead)
    for base in _serve(app):
        yield Client(base)


@pytest.mark.parametrize("bad", ["%2E%2E", "..x", "ABC", "a_b", "a.b", "-ab", "a" * 33, "%20a"])
@pytest.mark.parametrize("where", ["exp", "trial"])
def test_invalid_ids_are_404_without_touching_redis(
    no_redis_client: Client, bad: str, where: str
) -> None:
    exp_id, trial_id = (bad, "t1") if where == "exp" else ("exp1", bad)
    for kind, body in (("metrics", FINAL), ("status", {"attempt": 1, "status": "RUNNING"})):
        token = trial_token(SIGNING_KEY, exp_id, trial_id, 1)
        reply = no_redis_client.post(
            f"/api/v1/trials/{exp_id}/{trial_id}/{kind}", body, token=token
        )
        assert reply.status_code == 404, reply.text
        assert reply.json()["error"] == {"code": "not_found", "message": "no such trial"}


def test_valid_ids_do_reach_redis(no_redis_client: Client) -> None:
    """The control for the test above: a well-formed request does need Redis, and without
    it the keeper is told to come back (503 + Retry-After), not that the report is bad."""
    token = trial_token(SIGNING_KEY, "exp1", "t1", 1)
    for kind, body in (("metrics", FINAL), ("status", {"attempt": 1, "status": "RUNNING"})):
        reply = no_redis_client.post(f"/api/v1/trials/exp1/t1/{kind}", body, token=token)
        assert reply.status_code == 503, reply.text
        assert reply.headers["Retry-After"] == "1"
        assert reply.json()["error"]["code"] == "unavailable"


def test_body_over_the_limit_is_413_json(client: Client, store: Store, trial: TrialRecord) -> None:
    big = {**FINAL, "value": {"default": 1.0, "blob": "x" * (MAX_BODY * 2)}}
    reply = client.post(_metrics(trial), big, token=_token(trial))
    assert reply.status_code == 413
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json()["error"]["code"] == "request_entity_too_large"
    assert store.get_trial(EXP, trial.id).final is None


def test_signing_key_never_leaves_the_collector(
    client: Client, store: Store, trial: TrialRecord
) -> None:
    """Exercise every kind of answer, then look for the key in the bodies and in Redis."""
    client.post(_metrics(trial), FINAL, token=_token(trial))
    client.post(_metrics(trial), FINAL, token=_token(trial))
    client.post(_metrics(trial), FINAL, token="wrong")
    client.post(_metrics(trial), data=b"{", token=_token(trial))
    client.post(_status(trial), {"attempt": 2, "status": "RUNNING"}, token=_token(trial, 2))
    client.post(_status(trial), {"attempt": 1, "status": "SUCCEEDED"}, token=_token(trial))
    client.post(_metrics(trial), FINAL, token=SIGNING_KEY)
    assert len(client.bodies) == 7
    assert all(SIGNING_KEY not in body for body in client.bodies)
    dump: list[str] = []
    for key in store.redis.scan_iter():
        kind = store.redis.type(key)
        if kind == "hash":
            dump.append(repr(store.redis.hgetall(key)))
        elif kind == "stream":
            dump.append(repr(store.redis.xrange(key)))
        elif kind == "set":
            dump.append(repr(store.redis.smembers(key)))
        elif kind == "string":
            dump.append(repr(store.redis.get(key)))
    assert dump
    assert not any(SIGNING_KEY in item for item in dump)
