"""The chart's embedded scripts run for real against the embedded stack (the same service
processes the images run): the `helm test` script posts an experiment and sees its trial
succeed, and the heartbeat exec probes pass for live services and fail for absent ones."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.embedded import EmbeddedStack
from tests.helm.conftest import Render, component, containers

pytestmark = [pytest.mark.integration, pytest.mark.helm]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def run_container_command(
    command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    assert command[0] == "python"
    base = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_helm_test_script_posts_an_experiment_whose_trial_succeeds(
    render: Render, stack: EmbeddedStack, tmp_path: Path
) -> None:
    pod = next(
        o for o in render("default", "--set", "tests.waitForTrial=true") if o["kind"] == "Pod"
    )
    container = containers(pod)[0]
    env = {e["name"]: e.get("value") or "" for e in container["env"]}
    assert env["HELM_TEST_WAIT_FOR_TRIAL"] == "true"
    env.update(
        KUBESWEEP_API_URL=stack.api_url,
        KUBESWEEP_API_TOKEN=stack.api_token,  # from the chart's Secret in a cluster
        KUBESWEEP_HOME=str(tmp_path / "home"),
    )
    done = run_container_command(container["command"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trial succeeded" in done.stdout
    assert "stopped and deleted" in done.stdout


def test_heartbeat_probes_pass_for_live_services(render: Render, stack: EmbeddedStack) -> None:
    probed = 0
    for obj in render():
        if obj["kind"] == "Deployment" and component(obj) in ("tuner", "worker", "watch"):
            command = containers(obj)[0]["livenessProbe"]["exec"]["command"]
            env = {"KUBESWEEP_REDIS_URL": stack.redis_url}
            done = run_container_command(command, env)
            assert done.returncode == 0, f"{component(obj)}: {done.stderr}"
            # The same probe for a service that never beat fails.
            done = run_container_command([*command[:-1], "no-such-service"], env)
            assert done.returncode == 1
            probed += 1
    assert probed == 3
