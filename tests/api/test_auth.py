"""Bearer-token auth: unauthenticated requests are refused whenever a token is configured,
the API will not listen beyond loopback without one, and the token never appears in any
response, service log, stored file or Redis value while the API, CLI and UI are in use."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack, free_port
from kubesweep.cli.main import main
from kubesweep_dispatcher.api.openapi import build_spec
from tests.integration.helpers import wait_for, write_experiment

pytestmark = pytest.mark.integration
TOKEN = "tok" + secrets.token_hex(20)
PUBLIC = {"/healthz", "/api/v1/openapi.json"}
CHROMIUM = os.environ.get("KUBESWEEP_CHROMIUM") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    running = EmbeddedStack(
        tmp_path_factory.mktemp("stack"),
        api_token=TOKEN,
        extra_env={"KUBESWEEP_LOG_LEVEL": "DEBUG"},
    )
    with running:
        yield running


def _operations(exp_id: str, trial_id: str) -> list[tuple[str, str]]:
    out = []
    for path, item in build_spec()["paths"].items():
        for method in item:
            if method in ("get", "post", "patch", "delete") and path not in PUBLIC:
                concrete = path.format(exp_id=exp_id, trial_id=trial_id, name="parameter.cfg")
                out.append((method.upper(), concrete))
    return out


def _redis_text(url: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=False)
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = kind
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def test_unauthenticated_requests_are_refused(stack: EmbeddedStack, tmp_path: Path) -> None:
    client = ApiClient(stack.api_url, TOKEN)
    exp_id = client.submit(write_experiment(tmp_path / "a", trials=4, concurrency=1, sleep=30))
    trial_id = wait_for_trial(client, exp_id)
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer tök"},
    ]
    for method, path in _operations(exp_id, trial_id):
        for headers in bad_headers:
            answer = requests.request(
                method,
                f"{stack.api_url}{path}",
                headers=headers,
                params={"token": TOKEN, "access_token": TOKEN},
                json={"trial_concurrency": 5},
                timeout=10,
            )
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.json()["error"]["code"] == "unauthorised"
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    # Nothing those requests asked for happened.
    exp = client.experiment(exp_id)
    assert exp["status"] == "RUNNING"
    assert exp["trial_concurrency"] == 1
    assert client.trials(exp_id)[0]["status"] in ("WAITING", "RUNNING")
    for public in PUBLIC:
        assert requests.get(f"{stack.api_url}{public}", timeout=10).status_code == 200
    client.stop(exp_id)


def wait_for_trial(client: ApiClient, exp_id: str) -> str:
    deadline = time.monotonic() + 60
    while not (trials := client.trials(exp_id)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return str(trials[0]["id"])


def test_token_never_appears_in_responses_logs_storage_or_redis(
    stack: EmbeddedStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = ApiClient(stack.api_url, TOKEN)
    exp_id = client.submit(write_experiment(tmp_path / "b", trials=3, concurrency=3, steps=2))
    wait_for(client, exp_id, {"DONE"}, timeout=90)
    trial_id = client.trials(exp_id)[0]["id"]
    seen: list[str] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # Every operation of the API with the token; the answers must not echo it.
    for method, path in _operations(exp_id, trial_id):
        if method == "DELETE":
            continue
        params = {"follow": "false"} if path.endswith("/events") else None
        body: Any = {"trial_concurrency": 2}
        if path.endswith("/import"):
            body = [{"parameter": {"x": 0.5, "n": 1}, "value": 0.5}]
        answer = requests.request(
            method, f"{stack.api_url}{path}", headers=auth, params=params, json=body, timeout=30
        )
        assert answer.status_code < 500, (method, path, answer.text)
        seen.append(f"{answer.status_code} {answer.headers} {answer.text}")
    # Errors too: a bad request, a missing experiment, a conflict.
    for method, path in (
        ("PATCH", f"/api/v1/experiments/{exp_id}"),
        ("GET", "/api/v1/experiments/nosuchexp"),
        ("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/cancel"),
    ):
        answer = requests.request(
            method, f"{stack.api_url}{path}", headers=auth, data="{", timeout=30
        )
        assert 400 <= answer.status_code < 500
        seen.append(f"{answer.status_code} {answer.headers} {answer.text}")

    # The CLI's read and write commands (the token given as a flag).
    for argv in (
        ["experiment", "list", "--all"],
        ["experiment", "show", exp_id],
        ["view", exp_id],
        ["trial", "ls", exp_id],
        ["trial", "log", exp_id, trial_id, "--trial-log"],
        ["experiment", "export", exp_id, "--type", "csv"],
        ["webui", "url"],
        ["update", "concurrency", exp_id, "--value", "0"],
        ["stop", exp_id],
    ):
        code = main(["--url", stack.api_url, f"--token={TOKEN}", *argv])
        out, err = capsys.readouterr()
        assert code in (0, 2), (argv, err)
        seen.append(out + err)

    # The web UI, signed in with the token in the URL fragment.
    seen.extend(_browse(stack, exp_id))

    assert all(TOKEN not in text for text in seen)
    assert TOKEN not in _redis_text(stack.redis_url)
    stack.stop()  # flush and close every service log
    for path in stack.workdir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    logs = "".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    assert re.search(r"dispatcher API listening", logs)


def _browse(stack: EmbeddedStack, exp_id: str) -> list[str]:
    pages = [requests.get(f"{stack.api_url}{p}", timeout=10) for p in ("/", "/oview", "/detail")]
    assets = [requests.get(f"{stack.api_url}/ui/{a}", timeout=10) for a in ("app.js", "style.css")]
    seen = [f"{r.status_code} {r.headers} {r.text}" for r in pages + assets]
    if not Path(CHROMIUM).exists():
        return seen
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: seen.append(f"{r.url} {r.headers.get('referer', '')}"))
        page.goto(f"{stack.api_url}/oview?id={exp_id}#token={TOKEN}")
        expect(page.locator("#exp-id")).to_have_text(exp_id)
        expect(page.locator("#trial-table tbody tr").first).to_be_attached()
        seen.append(page.url)
        seen.append(page.content())
        browser.close()
    return seen


def _serve(redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
    base.update(
        {
            "KUBESWEEP_REDIS_URL": redis_url,
            "KUBESWEEP_SIGNING_KEY": "s" * 32,
            "KUBESWEEP_API_PORT": str(free_port()),
        }
    )
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kubesweep_dispatcher", "api"],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_api_will_not_listen_beyond_loopback_without_a_token(redis_url: str) -> None:
    refused = _serve(redis_url, KUBESWEEP_API_HOST="0.0.0.0")
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0 without KUBESWEEP_API_TOKEN" in refused.stderr
    # An empty token is no token: it must not open the API to everyone.
    empty = _serve(redis_url, KUBESWEEP_API_HOST="0.0.0.0", KUBESWEEP_API_TOKEN="")
    assert empty.returncode != 0
    assert "KUBESWEEP_API_TOKEN" in empty.stdout + empty.stderr
