"""Bad input through the real HTTP services: a clear answer, and nothing recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.codearchive import pack
from kubesweep.store import Store
from kubesweep.tokens import trial_token

from .helpers import wait_for, write_experiment

pytestmark = pytest.mark.integration

GOOD_CONFIG = """\
experimentName: bad-input
trialCommand: python3 trial.py
trialConcurrency: 1
maxTrialNumber: 1
tuner:
  name: Random
trainingService:
  platform: local
"""
GOOD_SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def finished(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """An experiment with one trial that has already SUCCEEDED."""
    config = write_experiment(tmp_path_factory.mktemp("exp"), trials=1, concurrency=1)
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(config)
    wait_for(client, exp_id, {"DONE"}, timeout=60)
    (trial,) = client.trials(exp_id)
    return exp_id, trial["id"]


def _post_experiment(
    stack: EmbeddedStack, config: str, space: str | None = GOOD_SPACE, tmp: Path | None = None
) -> requests.Response:
    code = tmp or Path(__file__).parent
    archive, _ = pack(code)
    data = {"config": config}
    if space is not None:
        data["search_space"] = space
    return requests.post(
        f"{stack.api_url}/api/v1/experiments",
        headers={"Authorization": f"Bearer {stack.api_token}"},
        data=data,
        files={"code": ("code.tar.gz", archive)},
        timeout=30,
    )


def _state(stack: EmbeddedStack) -> tuple[list[str], list[str]]:
    store = Store.from_url(stack.redis_url)
    root = stack.workdir / "storage" / "kubesweep"
    staged = sorted(p.name for p in root.iterdir()) if root.exists() else []
    return store.list_experiment_ids(), staged


@pytest.mark.parametrize(
    ("config", "space", "field", "words"),
    [
        ("experimentName: [unclosed\n", GOOD_SPACE, None, "not valid YAML"),
        (GOOD_CONFIG + "trialConcurency: 2\n", GOOD_SPACE, "trialConcurency", "did you mean"),
        (
            GOOD_CONFIG.replace("trialConcurrency: 1", "trialConcurrency: 0"),
            GOOD_SPACE,
            "trialConcurrency",
            "got 0",
        ),
        (GOOD_CONFIG, None, "searchSpace", "search space"),
        (
            GOOD_CONFIG,
            '{"x": {"_type": "uniformm", "_value": [0, 1]}}',
            "searchSpace.x._type",
            "did you mean",
        ),
        (
            GOOD_CONFIG,
            '{"x": {"_type": "loguniform", "_value": [0, 1]}}',
            "searchSpace.x._value",
            "> 0",
        ),
        (GOOD_CONFIG, '{"x": {"_type": "uniform"', "search_space", "JSON"),
        (GOOD_CONFIG.replace("platform: local", "platform: pai"), GOOD_SPACE, "platform", "pai"),
    ],
)
def test_bad_submission_is_refused_and_nothing_recorded(
    stack: EmbeddedStack,
    config: str,
    space: str | None,
    field: str | None,
    words: str,
) -> None:
    before = _state(stack)
    response = _post_experiment(stack, config, space)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert words.lower() in error["message"].lower(), error
    if field:
        assert field in error.get("field", "") or field in error["message"], error
    assert _state(stack) == before


def test_api_refuses_requests_without_the_token(stack: EmbeddedStack) -> None:
    for method, path in (("GET", "/api/v1/experiments"), ("POST", "/api/v1/experiments")):
        response = requests.request(method, f"{stack.api_url}{path}", timeout=10)
        assert response.status_code == 401
        assert stack.api_token not in response.text
    wrong = requests.get(
        f"{stack.api_url}/api/v1/experiments", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401


def _metric(
    stack: EmbeddedStack,
    exp_id: str,
    trial_id: str,
    body: object,
    token: str | None,
    raw: bytes | None = None,
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(
        f"{stack.collector_url}/api/v1/trials/{exp_id}/{trial_id}/metrics",
        data=raw if raw is not None else json.dumps(body),
        headers=headers,
        timeout=10,
    )


def _stream_length(stack: EmbeddedStack, exp_id: str) -> int:
    return len(Store.from_url(stack.redis_url).read_events(exp_id, count=100_000))


def test_metric_posts_are_checked(stack: EmbeddedStack, finished: tuple[str, str]) -> None:
    exp_id, trial_id = finished
    token = trial_token(stack.signing_key, exp_id, trial_id, 1)
    body = {"attempt": 1, "type": "PERIODICAL", "sequence": 99, "value": 0.5}
    before = _stream_length(stack, exp_id)

    assert _metric(stack, exp_id, trial_id, body, None).status_code == 401
    assert _metric(stack, exp_id, trial_id, body, "0" * 64).status_code == 401
    other = trial_token(stack.signing_key, exp_id, "zzzzzzzz", 1)
    assert _metric(stack, exp_id, trial_id, body, other).status_code == 401
    assert _metric(stack, exp_id, "zzzzzzzz", body, other).status_code == 404
    finished_reply = _metric(stack, exp_id, trial_id, body, token)
    assert finished_reply.status_code == 409
    assert "finished" in finished_reply.json()["error"]["message"]
    for value in ("high", True, None, {"accuracy": 0.9}, {"default": "x"}):
        reply = _metric(stack, exp_id, trial_id, {**body, "value": value}, token)
        assert reply.status_code == 400, value
        assert reply.json()["error"]["field"].startswith("value")
    assert _metric(stack, exp_id, trial_id, None, token, raw=b"[1, 2").status_code == 400
    huge = json.dumps({**body, "value": {"default": 1.0, "blob": "x" * 200_000}}).encode()
    assert _metric(stack, exp_id, trial_id, None, token, raw=huge).status_code == 413

    assert _stream_length(stack, exp_id) == before
