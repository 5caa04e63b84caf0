"""The `kubesweep` command line against a running stack, as a user would drive it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.embedded import EmbeddedStack
from kubesweep_dispatcher.platforms.local import keeper_alive

from .helpers import write_experiment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def kubesweep(
    stack: EmbeddedStack, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
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
        timeout=timeout,
        check=False,
    )


def test_unmodified_nni_trial_reports_reach_trial_ls(
    stack: EmbeddedStack, examples_dir: Path, tmp_path: Path
) -> None:
    example = tmp_path / "quickstart"
    shutil.copytree(examples_dir / "quickstart", example)
    config = example / "config.yml"
    config.write_text(config.read_text().replace("maxTrialNumber: 40", "maxTrialNumber: 4"))
    created = kubesweep(stack, "create", "--config", str(config), "--foreground")
    assert created.returncode == 0, created.stderr
    exp_id = created.stdout.split()[1]

    listed = kubesweep(stack, "trial", "ls", exp_id, "--json")
    assert listed.returncode == 0, listed.stderr
    trials = json.loads(listed.stdout)
    assert len(trials) == 4
    for trial in trials:
        assert trial["status"] == "SUCCEEDED"
        assert trial["intermediate_count"] == 3
        assert trial["default_metric"] == pytest.approx(trial["final"])
        assert trial["last_intermediate"] == pytest.approx(trial["final"])
    table = kubesweep(stack, "trial", "ls", exp_id)
    assert table.returncode == 0
    best = max(t["default_metric"] for t in trials)
    assert f"{best:.6g}" in table.stdout
    assert "3 (last" in table.stdout

    shown = kubesweep(stack, "experiment", "show", exp_id)
    assert json.loads(shown.stdout)["status"] == "DONE"
    assert exp_id in kubesweep(stack, "experiment", "list", "--all").stdout


def test_stop_cancels_running_trials(stack: EmbeddedStack, tmp_path: Path) -> None:
    config = write_experiment(tmp_path / "exp", trials=10, concurrency=2, sleep=30)
    created = kubesweep(stack, "create", "--config", str(config))
    exp_id = created.stdout.split()[1]
    deadline = time.monotonic() + 60
    while True:
        trials = json.loads(kubesweep(stack, "trial", "ls", exp_id, "--json").stdout)
        if sum(t["status"] == "RUNNING" for t in trials) == 2:
            break
        assert time.monotonic() < deadline, trials
        time.sleep(0.2)
    stopped = kubesweep(stack, "stop", exp_id)
    assert stopped.returncode == 0
    assert "STOPPED" in stopped.stdout
    trials = json.loads(kubesweep(stack, "trial", "ls", exp_id, "--json").stdout)
    assert {t["status"] for t in trials} == {"SYS_CANCELED"}
    launched = [t for t in trials if t["job"]]
    assert launched, "no trial had started before the stop"
    deadline = time.monotonic() + 20
    while any(keeper_alive(t["job"]) for t in launched):
        assert time.monotonic() < deadline, "cancelled trials are still running"
        time.sleep(0.2)


def test_bad_config_exits_2_with_the_key(stack: EmbeddedStack, tmp_path: Path) -> None:
    config = write_experiment(tmp_path / "exp", trials=1, concurrency=1)
    config.write_text(config.read_text() + "maxTrailNumber: 3\n")
    result = kubesweep(stack, "create", "--config", str(config))
    assert result.returncode == 2
    assert "maxTrailNumber" in result.stderr
    assert "did you mean" in result.stderr
