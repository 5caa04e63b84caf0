"""Forged, replayed and misdirected trial tokens against the real collector: refused with
401/404/409, nothing recorded, the token never echoed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.records import TrialRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token
from tests.integration.helpers import write_experiment

pytestmark = pytest.mark.integration

METRIC = {"attempt": 1, "type": "PERIODICAL", "sequence": 1000, "value": 0.25}


@pytest.fixture(scope="module")
def running(
    stack: EmbeddedStack, store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[TrialRecord]]]:
    """Two experiments whose trials are RUNNING (and sleep) while the tests post."""
    client = ApiClient(stack.api_url, stack.api_token)
    ids = []
    for name, trials in (("a", 2), ("b", 1)):
        folder: Path = tmp_path_factory.mktemp(f"tokens-{name}")
        config = write_experiment(folder, trials=trials, concurrency=trials, sleep=120.0, steps=1)
        ids.append(client.submit(config))
    deadline = time.monotonic() + 90
    found: dict[str, list[TrialRecord]] = {}
    while True:
        found = {exp_id: store.list_trials(exp_id) for exp_id in ids}
        wanted = {ids[0]: 2, ids[1]: 1}
        if all(sum(t.status.value == "RUNNING" for t in found[e]) == n for e, n in wanted.items()):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    yield found
    for exp_id in ids:
        client.stop(exp_id)


def _post(
    stack: EmbeddedStack,
    exp_id: str,
    trial_id: str,
    body: object,
    headers: dict[str, str],
    kind: str = "metrics",
) -> requests.Response:
    return requests.post(
        f"{stack.collector_url}/api/v1/trials/{exp_id}/{trial_id}/{kind}",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _events(store: Store, exp_ids: list[str]) -> int:
    return sum(len(store.read_events(e, count=100_000)) for e in exp_ids)


def test_forged_tokens_are_refused(
    stack: EmbeddedStack, store: Store, running: dict[str, list[TrialRecord]]
) -> None:
    exp_id = next(iter(running))
    trial = running[exp_id][0]
    good = trial_token(stack.signing_key, exp_id, trial.id, 1)
    before = _events(store, list(running))
    forged = {
        "random": _bearer("ab" * 32),
        "other key": _bearer(trial_token("not-the-key", exp_id, trial.id, 1)),
        "truncated": _bearer(good[:-1]),
        "upper-cased": _bearer(good.upper()),
        "basic scheme": {"Authorization": f"Basic {good}"},
        "no scheme": {"Authorization": good},
        "other header": {"X-Trial-Token": good},
        "empty": _bearer(""),
        "non-ascii": {"Authorization": "Bearer \u00e9t\u00e9".encode().decode("latin-1")},
    }
    for name, headers in forged.items():
        reply = _post(stack, exp_id, trial.id, METRIC, headers)
        assert reply.status_code == 401, (name, reply.text)
        assert reply.json()["error"]["code"] == "unauthorised"
        assert good not in reply.text
        status = {"attempt": 1, "status": "SUCCEEDED", "exit_code": 0}
        assert _post(stack, exp_id, trial.id, status, headers, "status").status_code == 401
    # In the query string, a token is not a credential (it would end up in access logs).
    query = requests.post(
        f"{stack.collector_url}/api/v1/trials/{exp_id}/{trial.id}/metrics?token={good}",
        json=METRIC,
        timeout=10,
    )
    assert query.status_code == 401
    assert _events(store, list(running)) == before
    assert store.get_trial(exp_id, trial.id).status.value == "RUNNING"


def test_a_trial_cannot_post_for_another_trial_or_experiment(
    stack: EmbeddedStack, store: Store, running: dict[str, list[TrialRecord]]
) -> None:
    exp_a, exp_b = list(running)
    mine, neighbour = running[exp_a]
    (foreign,) = running[exp_b]
    token = trial_token(stack.signing_key, exp_a, mine.id, 1)
    before = _events(store, [exp_a, exp_b])
    end = {"attempt": 1, "status": "SUCCEEDED", "exit_code": 0}
    for exp_id, trial_id in (
        (exp_a, neighbour.id),  # another trial of my experiment
        (exp_b, foreign.id),  # a trial of another experiment
        (exp_b, mine.id),  # my trial id under another experiment
    ):
        for kind, body in (("metrics", METRIC), ("status", end)):
            reply = _post(stack, exp_id, trial_id, body, _bearer(token), kind)
            assert reply.status_code == 401, (exp_id, trial_id, kind, reply.text)
    assert _events(store, [exp_a, exp_b]) == before
    for exp_id, trial in ((exp_a, neighbour), (exp_b, foreign)):
        now = store.get_trial(exp_id, trial.id)
        assert now.status.value == "RUNNING"
        assert now.final is None


def test_a_replayed_report_is_recorded_once(
    stack: EmbeddedStack, store: Store, running: dict[str, list[TrialRecord]]
) -> None:
    exp_id = next(iter(running))
    trial = running[exp_id][1]
    token = trial_token(stack.signing_key, exp_id, trial.id, 1)
    body = {**METRIC, "sequence": 4242}
    first = _post(stack, exp_id, trial.id, body, _bearer(token))
    assert first.status_code == 201, first.text
    before = _events(store, [exp_id])
    for _ in range(3):
        again = _post(stack, exp_id, trial.id, {**body, "value": 0.99}, _bearer(token))
        assert again.status_code == 200
        assert again.json() == {"accepted": False, "duplicate": True}
    assert _events(store, [exp_id]) == before
    assert store.get_trial(exp_id, trial.id).last_intermediate == 0.25


def test_the_token_of_an_earlier_attempt_is_refused(
    stack: EmbeddedStack, store: Store, running: dict[str, list[TrialRecord]]
) -> None:
    """A replayed token from attempt 1 cannot report for attempt 2 - neither as itself
    (stale, 409) nor by claiming the new attempt number (401)."""
    exp_b = list(running)[1]
    (trial,) = running[exp_b]
    old = trial_token(stack.signing_key, exp_b, trial.id, 1)
    # The fault: the trial moved to a second attempt (as a retry would do).
    store.redis.hset(f"ks:exp:{exp_b}:trial:{trial.id}", "attempt", "2")
    try:
        before = _events(store, [exp_b])
        stale = _post(stack, exp_b, trial.id, METRIC, _bearer(old))
        assert stale.status_code == 409, stale.text
        assert "attempt" in stale.json()["error"]["message"]
        claimed = _post(stack, exp_b, trial.id, {**METRIC, "attempt": 2}, _bearer(old))
        assert claimed.status_code == 401
        end = {"attempt": 2, "status": "FAILED", "exit_code": 1}
        assert _post(stack, exp_b, trial.id, end, _bearer(old), "status").status_code == 401
        assert _events(store, [exp_b]) == before
    finally:
        store.redis.hset(f"ks:exp:{exp_b}:trial:{trial.id}", "attempt", "1")


def test_bad_ids_in_the_path_never_reach_redis(
    stack: EmbeddedStack, running: dict[str, list[TrialRecord]]
) -> None:
    exp_id = next(iter(running))
    trial = running[exp_id][0]
    token = trial_token(stack.signing_key, exp_id, trial.id, 1)
    for exp_part, trial_part in (
        ("..", trial.id),
        (exp_id, "*"),
        (exp_id, "a" * 300),
        ("ks:exp", trial.id),
        (exp_id, "%2e%2e"),
    ):
        reply = _post(stack, exp_part, trial_part, METRIC, _bearer(token))
        assert reply.status_code in (401, 404), (exp_part, trial_part, reply.status_code)
