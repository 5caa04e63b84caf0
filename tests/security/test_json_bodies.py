"""Oversized and deeply nested JSON (and YAML) against the real collector and API: refused
with 400/413 naming the problem, never a 5xx, and nothing recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.codearchive import pack
from kubesweep.records import TrialRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token
from tests.integration.helpers import write_experiment

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
DEEP = 30_000  # far past any parser's recursion limit, still under the collector's 64 KB


@pytest.fixture(scope="module")
def live(
    stack: EmbeddedStack, store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrialRecord]:
    """A RUNNING trial (sleeping) to post reports for."""
    client = ApiClient(stack.api_url, stack.api_token)
    config = write_experiment(tmp_path_factory.mktemp("json"), trials=1, concurrency=1, sleep=120)
    exp_id = client.submit(config)
    deadline = time.monotonic() + 60
    while not [t for t in store.list_trials(exp_id) if t.status.value == "RUNNING"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    yield store.list_trials(exp_id)[0]
    client.stop(exp_id)


def _events(store: Store, exp_id: str) -> int:
    return len(store.read_events(exp_id, count=100_000))


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def _collector(
    stack: EmbeddedStack, trial: TrialRecord, raw: bytes, kind: str = "metrics"
) -> requests.Response:
    token = trial_token(stack.signing_key, trial.experiment_id, trial.id, 1)
    return requests.post(
        f"{stack.collector_url}/api/v1/trials/{trial.experiment_id}/{trial.id}/{kind}",
        data=raw,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _api(
    stack: EmbeddedStack,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> requests.Response:
    headers = headers or {}
    return requests.request(
        method,
        f"{stack.api_url}{path}",
        headers={"Authorization": f"Bearer {stack.api_token}", **headers},
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )


def test_deeply_nested_reports_are_400(
    stack: EmbeddedStack, store: Store, live: TrialRecord
) -> None:
    before = _events(store, live.experiment_id)
    metric = '{"attempt": 1, "type": "PERIODICAL", "sequence": 7, "value": {"default": 1, "x": '
    bodies = {
        "array": _nested(DEEP).encode(),
        "object": ('{"a":' * DEEP + "1" + "}" * DEEP).encode()[:60_000],
        "inside a metric": (metric + _nested(20_000) + "}}").encode(),
    }
    for name, raw in bodies.items():
        for kind in ("metrics", "status"):
            reply = _collector(stack, live, raw, kind)
            assert reply.status_code == 400, (name, kind, reply.status_code, reply.text[:200])
            assert reply.json()["error"]["code"] == "invalid_input"
    assert _events(store, live.experiment_id) == before


def test_a_nested_metric_under_the_parser_limit_is_400(
    stack: EmbeddedStack, store: Store, live: TrialRecord
) -> None:
    value = {"default": 0.5, "extra": json.loads(_nested(500))}
    body = {"attempt": 1, "type": "PERIODICAL", "sequence": 8, "value": value}
    reply = _collector(stack, live, json.dumps(body).encode())
    assert reply.status_code == 400, reply.text[:200]
    assert reply.json()["error"]["field"] == "value"
    assert "nest" in reply.json()["error"]["message"]
    # A dict metric of a few levels is still fine.
    fine = {**body, "value": {"default": 0.5, "per_class": {"a": [1, 2], "b": {"c": 3}}}}
    assert _collector(stack, live, json.dumps(fine).encode()).status_code == 201
    trials = _api(stack, "GET", f"/api/v1/experiments/{live.experiment_id}/trials")
    assert trials.status_code == 200


def test_oversized_reports_are_413(stack: EmbeddedStack, store: Store, live: TrialRecord) -> None:
    before = _events(store, live.experiment_id)
    big = json.dumps(
        {
            "attempt": 1,
            "type": "PERIODICAL",
            "sequence": 9,
            "value": {"default": 1, "x": "y" * 70_000},
        }
    ).encode()
    for kind in ("metrics", "status"):
        reply = _collector(stack, live, big, kind)
        assert reply.status_code == 413, reply.text[:200]
    long_message = {"attempt": 1, "status": "FAILED", "exit_code": 1, "message": "m" * 5000}
    reply = _collector(stack, live, json.dumps(long_message).encode(), "status")
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == "message"
    assert _events(store, live.experiment_id) == before
    assert store.get_trial(live.experiment_id, live.id).status.value == "RUNNING"


def test_deeply_nested_api_bodies_are_400(
    stack: EmbeddedStack, store: Store, live: TrialRecord
) -> None:
    exp_id = live.experiment_id
    before = _events(store, exp_id)
    spec = store.get_experiment(exp_id).spec
    deep = _nested(200_000)
    for method, path in (
        ("PATCH", f"/api/v1/experiments/{exp_id}"),
        ("POST", f"/api/v1/experiments/{exp_id}/import"),
    ):
        reply = _api(stack, method, path, JSON, data=deep.encode())
        assert reply.status_code == 400, (path, reply.status_code, reply.text[:200])
    assert _events(store, exp_id) == before
    assert store.get_experiment(exp_id).spec == spec


def test_oversized_api_body_is_413(stack: EmbeddedStack, store: Store, live: TrialRecord) -> None:
    exp_id = live.experiment_id
    huge = json.dumps({"trial_concurrency": 2, "pad": "x" * (4 * 1024 * 1024)})
    reply = _api(stack, "PATCH", f"/api/v1/experiments/{exp_id}", JSON, data=huge)
    assert reply.status_code == 413
    assert store.get_experiment(exp_id).spec["trial_concurrency"] == 1


@pytest.mark.parametrize("where", ["search_space", "config"])
def test_deeply_nested_submission_is_400_and_records_nothing(
    stack: EmbeddedStack, store: Store, tmp_path: Path, where: str
) -> None:
    (tmp_path / "trial.py").write_text("print(1)\n")
    archive, _ = pack(tmp_path)
    config = (
        "experimentName: deep\ntrialCommand: python3 trial.py\ntrialConcurrency: 1\n"
        "maxTrialNumber: 1\ntuner:\n  name: Random\ntrainingService:\n  platform: local\n"
    )
    space = '{"x": {"_type": "uniform", "_value": [0, 1]}}'
    if where == "search_space":
        space = '{"x": {"_type": "choice", "_value": ' + _nested(100_000) + "}}"
    else:
        config += "extra: " + _nested(100_000) + "\n"
    before = store.list_experiment_ids()
    reply = _api(
        stack,
        "POST",
        "/api/v1/experiments",
        data={"config": config, "search_space": space},
        files={"code": ("code.tar.gz", archive)},
    )
    assert reply.status_code == 400, reply.text[:300]
    assert store.list_experiment_ids() == before
