"""Assessors in the running stack: a clearly bad trial is stopped early and its job killed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store
from kubesweep_dispatcher.platforms.local import keeper_alive

from .helpers import wait_for

pytestmark = pytest.mark.integration

TRIAL = """\
import time, nni
params = nni.get_next_parameter()
level = 0.9 if params["quality"] == "good" else 0.2
for step in range(1, 11):
    time.sleep(0.3)
    nni.report_intermediate_result(level * step / 10)
nni.report_final_result(level)
"""

CONFIG = """\
experimentName: medianstop
searchSpaceFile: space.json
trialCommand: python3 trial.py
trialCodeDirectory: code
trialConcurrency: 2
maxTrialNumber: 10
tuner:
  name: Random
  classArgs:
    optimize_mode: maximize
    seed: 5
  includeIntermediateResults: true
assessor:
  name: Medianstop
  classArgs:
    optimize_mode: maximize
    start_step: 3
trainingService:
  platform: local
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path / "stack") as running:
        yield running


def test_medianstop_stops_bad_trials_early(stack: EmbeddedStack, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "trial.py").write_text(TRIAL)
    (tmp_path / "space.json").write_text(
        '{"quality": {"_type": "choice", "_value": ["good", "bad"]},'
        ' "x": {"_type": "uniform", "_value": [0, 1]}}'
    )
    (tmp_path / "config.yml").write_text(CONFIG)
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(tmp_path / "config.yml")
    exp = wait_for(client, exp_id, {"DONE", "ERROR", "STOPPED"}, timeout=180)
    assert exp["status"] == "DONE"
    trials = Store.from_url(stack.redis_url).list_trials(exp_id)
    assert len(trials) == 10
    stopped = [t for t in trials if t.status.value == "EARLY_STOPPED"]
    assert stopped, [(t.parameters["quality"], t.status) for t in trials]
    assert all(t.parameters["quality"] == "bad" for t in stopped)
    assert all(t.intermediate_count < 10 for t in stopped)
    assert all("Medianstop" in t.message for t in stopped)
    assert not any(keeper_alive(t.job) for t in stopped)
    good = [t for t in trials if t.parameters["quality"] == "good"]
    assert all(t.status.value == "SUCCEEDED" for t in good)
