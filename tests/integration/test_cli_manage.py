"""nnictl parity against a running stack: update, resume, export/import, delete, logs,
metrics, filters and the event stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack

from .helpers import wait_for, write_experiment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def kubesweep(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kubesweep.cli.main",
            "--url",
            stack.api_url,
            f"--token={stack.api_token}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_update_resume_export_import_delete(stack: EmbeddedStack, tmp_path: Path) -> None:
    client = ApiClient(stack.api_url, stack.api_token)
    # Long enough trials that both updates land while the first four are still running,
    # even when each CLI process takes seconds to start on a busy machine.
    config = write_experiment(tmp_path / "a", trials=4, concurrency=1, sleep=5.0)
    exp_id = client.submit(config)
    _ok(kubesweep(stack, "update", "concurrency", exp_id, "--value", "2"))
    _ok(kubesweep(stack, "update", "trialnum", exp_id, "--value", "6"))
    refused = kubesweep(stack, "update", "trialnum", exp_id, "--value", "0")
    assert refused.returncode == 2
    assert "max_trial_number" in refused.stderr
    exp = wait_for(client, exp_id, {"DONE"}, timeout=90)
    assert exp["max_trial_number"] == 6
    assert exp["trial_concurrency"] == 2
    assert sum(exp["trial_counts"].values()) == 6

    _ok(kubesweep(stack, "update", "trialnum", exp_id, "--value", "8"))
    _ok(kubesweep(stack, "resume", exp_id))
    exp = wait_for(client, exp_id, {"DONE"}, timeout=90)
    assert sum(exp["trial_counts"].values()) == 8

    exported = json.loads(_ok(kubesweep(stack, "experiment", "export", exp_id)))
    assert len(exported) == 8
    assert {"parameter", "value", "trialJobId"} <= set(exported[0])
    csv_text = _ok(kubesweep(stack, "experiment", "export", exp_id, "--type", "csv"))
    assert csv_text.splitlines()[0] == "trialJobId,n,x,reward"
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(exported))

    second = client.submit(write_experiment(tmp_path / "b", trials=1, concurrency=1, sleep=12))
    reply = _ok(kubesweep(stack, "experiment", "import", second, "--filename", str(export_file)))
    assert "imported 8" in reply
    bad = tmp_path / "bad.json"
    bad.write_text('[{"parameter": {"x": 1}, "value": "high"}]')
    refused = kubesweep(stack, "experiment", "import", second, "--filename", str(bad))
    assert refused.returncode == 2
    assert "body[0].value" in refused.stderr
    wait_for(client, second, {"DONE"}, timeout=60)

    storage = stack.workdir / "storage" / "kubesweep" / exp_id
    assert storage.exists()
    _ok(kubesweep(stack, "experiment", "delete", exp_id, "--purge"))
    assert not storage.exists()
    assert kubesweep(stack, "experiment", "show", exp_id).returncode == 1


def test_trial_logs_metrics_filters_and_events(stack: EmbeddedStack, tmp_path: Path) -> None:
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(write_experiment(tmp_path / "c", trials=3, concurrency=3, steps=2))
    wait_for(client, exp_id, {"DONE"}, timeout=60)
    trials = json.loads(_ok(kubesweep(stack, "trial", "ls", exp_id, "--json", "--head", "2")))
    assert len(trials) == 2
    assert trials[0]["default_metric"] >= trials[1]["default_metric"]
    only = json.loads(_ok(kubesweep(stack, "trial", "ls", exp_id, "--json", "--status", "FAILED")))
    assert only == []
    trial_id = trials[0]["id"]
    log = _ok(kubesweep(stack, "trial", "log", exp_id, trial_id, "--trial-log"))
    assert "exit code 0" in log
    metrics = json.loads(_ok(kubesweep(stack, "trial", "metrics", exp_id, trial_id)))
    assert [m["type"] for m in metrics] == ["PERIODICAL", "PERIODICAL", "FINAL"]
    assert [m["sequence"] for m in metrics[:2]] == [0, 1]

    response = requests.get(
        f"{stack.api_url}/api/v1/experiments/{exp_id}/events?follow=false",
        headers={"Authorization": f"Bearer {stack.api_token}"},
        timeout=30,
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "experiment.submitted"
    assert events.count("trial.succeeded") == 3
    assert events[-1] == "experiment.done"
    ids = [line[4:] for line in response.text.splitlines() if line.startswith("id: ")]
    resumed = requests.get(
        f"{stack.api_url}/api/v1/experiments/{exp_id}/events?follow=false",
        headers={"Authorization": f"Bearer {stack.api_token}", "Last-Event-ID": ids[-2]},
        timeout=30,
    )
    assert [line[7:] for line in resumed.text.splitlines() if line.startswith("event: ")] == [
        "experiment.done"
    ]
    started = time.monotonic()
    assert _ok(kubesweep(stack, "webui", "url")).strip() == stack.api_url + "/"
    assert time.monotonic() - started < 30
