"""Every nnictl command of issue #6 against a running stack, with --json on every read
command and nnictl's exit codes: 0 success, 1 failure, 2 usage or config error."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.cli.main import main

from .helpers import wait_for, write_experiment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def check_returncode(self) -> None:
        assert self.returncode == 0, self.stderr


@pytest.fixture
def cli(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """The command line in this process (a fresh interpreter per command costs seconds on a
    busy machine; test_cli.py covers the real executable)."""

    def run(*args: str, token: str | None = None, url: str | None = None) -> Result:
        capsys.readouterr()
        argv = ["--url", url or stack.api_url, f"--token={token or stack.api_token}", *args]
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def ok_json(cli: Callable[..., Result], *args: str) -> Any:
    result = cli(*args)
    assert result.returncode == 0, (args, result.stderr)
    return json.loads(result.stdout)


def test_nnictl_commands_json_and_exit_codes(
    stack: EmbeddedStack, cli: Callable[..., Result], tmp_path: Path
) -> None:
    client = ApiClient(stack.api_url, stack.api_token)
    config = write_experiment(tmp_path / "a", trials=4, concurrency=2, sleep=5, steps=3)
    created = cli("create", "--config", str(config))
    assert created.returncode == 0, created.stderr
    exp_id = created.stdout.split()[1]

    # With one experiment running, the id may be left out (nnictl's default).
    status = ok_json(cli, "experiment", "status", "--json")
    assert status["id"] == exp_id
    assert ok_json(cli, "experiment", "show", "--json")["id"] == exp_id

    # trial kill, in both spellings; killing it twice is a failure, not a usage error.
    deadline = time.monotonic() + 60
    while not (running := [t for t in client.trials(exp_id) if t["status"] == "RUNNING"]):
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.2)
    victim = min(running, key=lambda t: t["intermediate_count"])["id"]
    killed = cli("trial", "kill", exp_id, "-T", victim)
    assert killed.returncode == 0, killed.stderr
    assert "USER_CANCELED" in killed.stdout
    again = cli("trial", "kill", exp_id, victim)
    assert again.returncode == 1
    assert "already ended" in again.stderr

    # update duration|searchspace|concurrency (trialnum is in test_cli_manage).
    cli("update", "duration", exp_id, "--value", "10m").check_returncode()
    assert client.experiment(exp_id)["max_experiment_duration"] == 600
    space = tmp_path / "space.json"
    space.write_text('{"x": {"_type": "uniform", "_value": [0.5, 1]}}')
    cli("update", "searchspace", exp_id, "--filename", str(space)).check_returncode()
    assert client.experiment(exp_id)["spec"]["search_space"]["x"]["_value"] == [0.5, 1]
    assert cli("update", "concurrency", exp_id, "--value", "two").returncode == 2
    assert cli("update", "duration", exp_id, "--value", "soon").returncode == 2

    wait_for(client, exp_id, {"DONE"}, timeout=90)
    view = ok_json(cli, "view", exp_id, "--json")
    assert view["experiment"]["id"] == exp_id
    assert f"web UI: {stack.api_url}/oview?id={exp_id}" in cli("view", exp_id).stdout
    assert len(view["trials"]) == 4
    assert {t["status"] for t in view["trials"]} == {"SUCCEEDED", "USER_CANCELED"}
    scored = [t for t in view["trials"] if t["default_metric"] is not None]
    worst = ok_json(cli, "trial", "ls", exp_id, "--json", "--tail", "1")
    assert worst[0]["default_metric"] == min(t["default_metric"] for t in scored)
    done = scored[0]["id"]
    metrics = ok_json(cli, "trial", "metrics", exp_id, "-T", done, "--json")
    assert [m["type"] for m in metrics] == ["PERIODICAL"] * 3 + ["FINAL"]
    log = ok_json(cli, "trial", "log", exp_id, done, "--trial-log", "--json")
    assert log["path"] == "output/local-0/trial.log"
    assert "exit code 0" in log["text"]
    exported = ok_json(cli, "experiment", "export", exp_id)
    assert len(exported) == len(scored)

    # stop --all stops every running experiment; delete --all forgets them.
    others = [client.submit(write_experiment(tmp_path / n, trials=4, concurrency=1, sleep=30))
              for n in ("b", "c")]  # fmt: skip
    listed = ok_json(cli, "experiment", "list", "--json")
    assert sorted(e["id"] for e in listed) == sorted(others)
    stopped = cli("stop", "--all")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.count("STOPPED") == 2
    assert ok_json(cli, "experiment", "list", "--json") == []
    everything = ok_json(cli, "experiment", "list", "--all", "--json")
    assert {e["id"] for e in everything} == {exp_id, *others}
    cli("experiment", "delete", "--all").check_returncode()
    assert ok_json(cli, "experiment", "list", "--all", "--json") == []

    # webui url
    assert ok_json(cli, "webui", "url", "--json") == {"url": f"{stack.api_url}/"}
    assert cli("webui", "url", "abc").stdout.strip() == (f"{stack.api_url}/oview?id=abc")
    with_token = cli("webui", "url", "--with-token").stdout.strip()
    assert with_token == f"{stack.api_url}/#token={stack.api_token}"


def test_exit_codes(cli: Callable[..., Result], tmp_path: Path) -> None:
    assert cli("frobnicate").returncode == 2
    assert cli("trial", "kill", "abc").returncode == 2
    assert cli("experiment", "show", "nosuchexp").returncode == 1
    wrong = cli("experiment", "list", token="not-the-token")
    assert wrong.returncode == 2
    assert "401" in wrong.stderr
    missing = tmp_path / "nothing.yml"
    assert cli("create", "--config", str(missing)).returncode == 2
    unreachable = cli("experiment", "list", url="http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr
