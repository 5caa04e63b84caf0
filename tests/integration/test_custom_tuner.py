"""Custom algorithms, multi-objective search and warm start on the real embedded stack.

- A custom NNI-style tuner and assessor (``codeDir`` + ``classFileName`` + ``className``,
  code outside the trial folder) run inside the tuner service: the code travels in the
  spec, results flow back into the user's class, its verdicts stop trials.
- Where custom algorithms are disabled, the API refuses the submission.
- NSGA-II on two named objectives: ``experiment show`` (API and CLI) reports the Pareto front.
- Warm start: experiment A exported (JSON and CSV) and imported into B at submission;
  B's tuner saw the results before its first suggestion and the best result survives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.codearchive import pack
from kubesweep.store import Store
from kubesweep_dispatcher.api.app import create_app
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.settings import DispatcherSettings

from .helpers import wait_for

pytestmark = pytest.mark.integration

TRIAL = """\
import time, nni
params = nni.get_next_parameter()
x = params["x"]
for step in range(1, 4):
    nni.report_intermediate_result(x * step)
    time.sleep(0.3)
nni.report_final_result({"default": x, "accuracy": x, "latency": (x - 2) ** 2 + params.get("y", 0)})
"""

# Written against NNI's own base classes: the tuner provides them when NNI is not installed.
CUSTOM_TUNER = """\
from nni.tuner import Tuner
from helper import first_value


class StepTuner(Tuner):
    \"\"\"Proposes x = 1 + the largest result received so far: proves results come back.\"\"\"

    def __init__(self, start=None):
        self.start = first_value() if start is None else start
        self.best = None
        self.space = None

    def update_search_space(self, search_space):
        self.space = search_space

    def generate_parameters(self, parameter_id, **kwargs):
        x = self.start if self.best is None else self.best + 1
        return {"x": x}

    def receive_trial_result(self, parameter_id, parameters, value, **kwargs):
        got = value["default"] if isinstance(value, dict) else value
        self.best = got if self.best is None else max(self.best, got)
"""
HELPER = "def first_value():\n    return 10\n"
CUSTOM_ASSESSOR = """\
from nni.assessor import Assessor, AssessResult


class AboveTwelve(Assessor):
    def assess_trial(self, trial_job_id, trial_history):
        return AssessResult.Bad if trial_history[0] > 12 else AssessResult.Good
"""
ASSESSOR = """\
assessor:
  codeDir: algo
  classFileName: judge.py
  className: AboveTwelve"""
CUSTOM_CONFIG = """\
authorName: test
experimentName: custom
trialConcurrency: 1
maxTrialNum: 4
trainingServicePlatform: local
searchSpacePath: space.json
useAnnotation: false
tuner:
  codeDir: algo
  classFileName: step_tuner.py
  className: StepTuner
  classArgs: {}
%s
trial:
  command: python3 trial.py
  codeDir: code
"""


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def cli(stack: EmbeddedStack, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kubesweep.cli.main", "--url", stack.api_url,
         f"--token={stack.api_token}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_custom_tuner_and_assessor_run_inside_the_tuner(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    _write(
        tmp_path,
        {
            "code/trial.py": TRIAL,
            "algo/step_tuner.py": CUSTOM_TUNER,
            "algo/helper.py": HELPER,
            "algo/judge.py": CUSTOM_ASSESSOR,
            "space.json": '{"x": {"_type": "randint", "_value": [0, 100]}}',
            "config.yml": CUSTOM_CONFIG % ASSESSOR,
        },
    )
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(tmp_path / "config.yml")
    exp = wait_for(client, exp_id, {"DONE", "ERROR"}, timeout=120)
    assert exp["status"] == "DONE", exp
    trials = sorted(Store.from_url(stack.redis_url).list_trials(exp_id), key=lambda t: t.seq)
    # 10 from the helper module, then 1 + the best result the class received.
    assert [t.parameters["x"] for t in trials] == [10, 11, 12, 13]
    # The custom assessor stops a trial whose first intermediate result exceeds 12.
    assert [t.status.value for t in trials] == ["SUCCEEDED"] * 3 + ["EARLY_STOPPED"]
    shown = client.experiment(exp_id)["spec"]["tuner"]
    assert shown["code_archive"].endswith("bytes>")  # not the archive itself
    assert len(shown["code_sha256"]) == 64


def test_custom_tuner_refused_where_disabled(stack: EmbeddedStack, tmp_path: Path) -> None:
    """A cluster-style API (setting off, its default) on loopback, sharing the stack's Redis."""
    _write(tmp_path, {"code/trial.py": TRIAL, "algo/step_tuner.py": CUSTOM_TUNER})
    settings = DispatcherSettings(
        redis_url=stack.redis_url,
        signing_key="s" * 32,
        api_token="t" * 32,
        storage_root=tmp_path / "storage",
    )
    assert settings.tuner_allow_custom_algorithms is False
    server = make_server("127.0.0.1", 0, create_app(DispatcherContext.from_settings(settings)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        before = len(ApiClient(stack.api_url, stack.api_token).experiments())
        reply = requests.post(
            f"http://127.0.0.1:{server.server_port}/api/v1/experiments",
            headers={"Authorization": "Bearer " + "t" * 32},
            data={
                "config": CUSTOM_CONFIG % "",
                "search_space": '{"x": {"_type": "randint", "_value": [0, 9]}}',
            },
            files={
                "code": ("code.tar.gz", pack(tmp_path / "code")[0]),
                "tuner_code": ("t.tar.gz", pack(tmp_path / "algo")[0]),
            },
            timeout=30,
        )
    finally:
        server.shutdown()
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["field"] == "tuner.className"
    assert "disabled in this deployment" in error["message"]
    assert "allowCustomAlgorithms" in error["message"]
    assert len(ApiClient(stack.api_url, stack.api_token).experiments()) == before


MO_CONFIG = """\
experimentName: two-objectives
searchSpace:
  x: {_type: uniform, _value: [0, 4]}
  y: {_type: choice, _value: [0, 1]}
trialCommand: python3 trial.py
trialCodeDirectory: code
trialConcurrency: 4
maxTrialNumber: 16
tuner:
  name: NSGAII
  classArgs: {seed: 3, population_size: 8}
trainingService: {platform: local}
kubesweep:
  objectives:
    - {name: accuracy, direction: maximize}
    - {name: latency, direction: minimize}
"""


def test_multi_objective_pareto_front_in_show(stack: EmbeddedStack, tmp_path: Path) -> None:
    _write(tmp_path, {"code/trial.py": TRIAL, "config.yml": MO_CONFIG})
    client = ApiClient(stack.api_url, stack.api_token)
    out = cli(stack, "create", "--config", str(tmp_path / "config.yml"), "--foreground")
    exp_id = out.split("experiment ")[1].split()[0]
    exp = client.experiment(exp_id)
    assert exp["status"] == "DONE", exp
    assert f"Pareto front of {exp_id}" in out  # the run's summary shows the trade-offs
    assert exp["optimize_mode"] == "maximize"  # the first objective ranks trials
    finals = {t.id: t.final for t in Store.from_url(stack.redis_url).list_trials(exp_id)}
    assert len(finals) == 16

    def beaten(a: dict[str, float]) -> bool:
        return any(
            b["accuracy"] >= a["accuracy"]
            and b["latency"] <= a["latency"]
            and (b["accuracy"] > a["accuracy"] or b["latency"] < a["latency"])
            for b in finals.values()
        )

    expected = {tid for tid, value in finals.items() if not beaten(value)}
    front = client.experiment(exp_id)["pareto_front"]
    assert {p["trial_id"] for p in front} == expected
    for point in front:
        assert point["values"] == {
            "accuracy": finals[point["trial_id"]]["accuracy"],
            "latency": finals[point["trial_id"]]["latency"],
        }
    shown = json.loads(cli(stack, "experiment", "show", exp_id))
    assert shown["pareto_front"] == front
    assert shown["objectives"][1] == {"name": "latency", "direction": "minimize"}


GRID_CONFIG = """\
experimentName: {name}
searchSpace:
  x: {{_type: choice, _value: {values}}}
trialCommand: python3 trial.py
trialCodeDirectory: code
trialConcurrency: 2
maxTrialNumber: 10
tuner:
  name: GridSearch
trainingService: {{platform: local}}
"""


def test_warm_start_round_trip(stack: EmbeddedStack, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "code/trial.py": TRIAL,
            "a.yml": GRID_CONFIG.format(name="a", values="[1, 2, 3]"),
            "b.yml": GRID_CONFIG.format(name="b", values="[1, 2, 3, 4, 5]"),
        },
    )
    client = ApiClient(stack.api_url, stack.api_token)
    first = client.submit(tmp_path / "a.yml")
    wait_for(client, first, {"DONE"}, timeout=90)
    shown_a = client.experiment(first)
    best_a, sign = shown_a["best"], 1 if shown_a["optimize_mode"] == "maximize" else -1
    trials_a = {t["id"]: t for t in client.trials(first)}
    (tmp_path / "a.csv").write_text(cli(stack, "experiment", "export", first, "--type", "csv"))
    (tmp_path / "a.json").write_text(cli(stack, "experiment", "export", first))
    # NNI's /export-data writes each value as a JSON string.
    nni_rows = [{**row, "value": json.dumps(row["value"])} for row in json.loads(
        (tmp_path / "a.json").read_text()
    )]  # fmt: skip
    (tmp_path / "nni.json").write_text(json.dumps(nni_rows))

    for export in ("a.csv", "a.json", "nni.json"):
        b_config, rows_file = str(tmp_path / "b.yml"), str(tmp_path / export)
        out = cli(stack, "create", "--config", b_config, "--import", rows_file)
        second = out.split("experiment ")[1].split()[0]
        wait_for(client, second, {"DONE"}, timeout=90)
        # GridSearch skips imported configurations: B only ran what A had not.
        assert sorted(t["parameters"]["x"] for t in client.trials(second)) == [4, 5]
        events = _events(stack, second)
        assert events[0]["type"] == "experiment.imported"  # before the first suggestion
        rows = events[0]["payload"]["data"]
        assert len(rows) == 3
        top = max(rows, key=lambda r: sign * _default(r["value"]))
        assert top["parameter"] == trials_a[best_a["trial_id"]]["parameters"]
        assert _default(top["value"]) == best_a["value"]


def _events(stack: EmbeddedStack, exp_id: str) -> list[dict[str, object]]:
    store = Store.from_url(stack.redis_url)
    return [e.event.model_dump() for e in store.read_events(exp_id, "0-0", count=1000)]


def _default(value: object) -> float:
    return float(value["default"] if isinstance(value, dict) else value)  # type: ignore[arg-type]
