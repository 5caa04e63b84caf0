"""Warm-start files (NNI's and kubesweep's JSON/CSV exports) and custom algorithm loading."""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesweep.codearchive import pack
from kubesweep.config import load_config_file, parse_config
from kubesweep.config.custom import attach_algorithm_code, pack_algorithm_code, public_spec
from kubesweep.errors import ConfigError
from kubesweep.importdata import parse_results
from kubesweep_tuner.algorithms import NoMoreTrials, create_tuner
from kubesweep_tuner.custom import CustomAlgorithmError, load_custom_assessor, load_custom_tuner

SPACE = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "model": {
        "_type": "choice",
        "_value": [{"_name": "svm", "C": {"_type": "uniform", "_value": [0, 9]}}, "knn"],
    },
}


@pytest.fixture(autouse=True)
def _no_lasting_nni_modules() -> Iterator[None]:
    """Custom code may install the minimal ``nni``; other tests import the trial shim's."""
    before = {name for name in sys.modules if name == "nni" or name.startswith("nni.")}
    yield
    for name in [n for n in sys.modules if n == "nni" or n.startswith("nni.")]:
        if name not in before:
            del sys.modules[name]


def test_nni_csv_with_dict_metrics_and_python_literals() -> None:
    # nnictl's CSV: parameters and the metric dict's keys as columns, nested choices via str().
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["model", "default", "lr", "acc", "trialJobId"])
    writer.writeheader()
    writer.writerow(
        {"model": str({"_name": "svm", "C": 2.5}), "default": 0.9, "lr": 0.01, "acc": 0.9,
         "trialJobId": "AbCd"}
    )  # fmt: skip
    writer.writerow({"model": "knn", "default": 0.7, "lr": 0.001, "acc": 0.7, "trialJobId": "x"})
    rows = parse_results(buffer.getvalue(), SPACE)
    assert rows == [
        {"parameter": {"model": {"_name": "svm", "C": 2.5}, "lr": 0.01},
         "value": {"default": 0.9, "acc": 0.9}},
        {"parameter": {"model": "knn", "lr": 0.001}, "value": {"default": 0.7, "acc": 0.7}},
    ]  # fmt: skip


def test_kubesweep_csv_and_json_exports() -> None:
    text = 'trialJobId,lr,model,reward\nt1,0.001,"{""_name"": ""svm"", ""C"": 1.0}",0.5\n'
    assert parse_results(text, SPACE) == [
        {"parameter": {"lr": 0.001, "model": {"_name": "svm", "C": 1.0}}, "value": 0.5}
    ]
    exported = [
        {"parameter": {"lr": 0.1, "model": "knn"}, "value": '{"default": 1}', "trialJobId": "a"}
    ]
    assert parse_results(json.dumps(exported), SPACE) == [
        {"parameter": {"lr": 0.1, "model": "knn"}, "value": {"default": 1}}
    ]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("[{", "<results>", "not valid JSON"),
        ('{"parameter": {}}', "body", "must be a list"),
        ('[{"parameter": {"lr": 1}, "value": "high"}]', "body[0].value", "not a number"),
        ('[{"parameter": {"lr": 1}, "value": {"acc": 1}}]', "body[0].value", "numeric 'default'"),
        ("a,b\n1,2\n", "<results>", "no column is a parameter"),
        ("lr,trialJobId\n0.1,x\n", "<results>", "no metric column"),
    ],
)
def test_bad_results_name_the_problem(text: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_results(text, SPACE)
    assert err.value.field == field
    assert words in err.value.reason


CUSTOM_V2 = """\
experimentName: custom
trialCommand: python3 trial.py
trialConcurrency: 1
searchSpace: {{x: {{_type: choice, _value: [1, 2, 3]}}}}
tuner:
  className: {cls}
  codeDirectory: algo
  classArgs: {{start: 2}}
trainingService: {{platform: local}}
"""
KUBESWEEP_STYLE = """\
from kubesweep_tuner.algorithms.base import NoMoreTrials, Tuner


class Cycle(Tuner):
    def __init__(self, *, start):
        super().__init__()
        self.start = start
        self.results = []

    def update_search_space(self, search_space):
        self.values = search_space["x"]["_value"]

    def generate_parameters(self, parameter_id):
        if parameter_id >= len(self.values):
            raise NoMoreTrials("done")
        return {"x": self.values[(self.start + parameter_id) % len(self.values)]}

    def receive_trial_result(self, parameter_id, parameters, value):
        self.results.append(value)


class Broken(Cycle):
    def generate_parameters(self, parameter_id):
        return 1 / 0
"""


def _spec(tmp_path: Path, cls: str) -> Any:
    (tmp_path / "algo" / "pkg").mkdir(parents=True, exist_ok=True)
    (tmp_path / "algo" / "pkg" / "cycle.py").write_text(KUBESWEEP_STYLE)
    (tmp_path / "config.yml").write_text(CUSTOM_V2.format(cls=cls))
    return load_config_file(tmp_path / "config.yml")


def test_custom_tuner_travels_in_the_spec_and_runs(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "pkg.cycle.Cycle")
    attached = attach_algorithm_code(spec, pack_algorithm_code(spec), allowed=True)
    (tmp_path / "algo" / "pkg" / "cycle.py").unlink()  # the tuner never reads the user's disk
    tuner = load_custom_tuner(attached.tuner)
    tuner.update_search_space(attached.search_space)
    assert [tuner.generate_parameters(i)["x"] for i in range(3)] == [3, 1, 2]
    with pytest.raises(NoMoreTrials):
        tuner.generate_parameters(3)
    tuner.receive_trial_result(0, {"x": 3}, 0.5)
    assert tuner.inner.results == [0.5]  # type: ignore[attr-defined]
    shown = public_spec(attached.model_dump(mode="json"))["tuner"]
    size = len(base64.b64decode(attached.tuner.code_archive or ""))
    assert shown["code_archive"] == f"<{size} bytes>"


def test_custom_tuner_errors_are_contained(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "pkg.cycle.Broken")
    tuner = load_custom_tuner(
        attach_algorithm_code(spec, pack_algorithm_code(spec), allowed=True).tuner
    )
    tuner.update_search_space(spec.search_space)
    with pytest.raises(CustomAlgorithmError, match="ZeroDivisionError"):
        tuner.generate_parameters(0)


def test_custom_algorithms_refused_and_checked(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "pkg.cycle.Cycle")
    archives = pack_algorithm_code(spec)
    with pytest.raises(ConfigError) as err:
        attach_algorithm_code(spec, archives, allowed=False)
    assert err.value.field == "tuner.className"
    assert "disabled in this deployment" in err.value.reason
    with pytest.raises(ConfigError) as err:
        attach_algorithm_code(spec, {}, allowed=True)
    assert err.value.field == "tuner_code"
    missing = _spec(tmp_path, "pkg.other.Cycle")
    with pytest.raises(ConfigError, match=r"pkg/other\.py is not in the tuner's code folder"):
        attach_algorithm_code(missing, archives, allowed=True)
    with pytest.raises(ConfigError) as err:
        attach_algorithm_code(spec, {"tuner": b"not a tar"}, allowed=True)
    assert err.value.field == "tuner_code"
    with pytest.raises(ConfigError, match="defines no class 'Nope'"):
        load_custom_tuner(
            attach_algorithm_code(_spec(tmp_path, "pkg.cycle.Nope"), archives, allowed=True).tuner
        )


def test_nni_style_assessor_without_nni_installed(tmp_path: Path) -> None:
    (tmp_path / "judge.py").write_text(
        "from nni.assessor import Assessor, AssessResult\n"
        "class Judge(Assessor):\n"
        "    def assess_trial(self, trial_job_id, trial_history):\n"
        "        return AssessResult.Bad if trial_history[-1] < 0 else AssessResult.Good\n"
    )
    archive, _ = pack(tmp_path)
    config = (
        "authorName: a\nexperimentName: e\ntrialConcurrency: 1\ntrainingServicePlatform: local\n"
        "useAnnotation: false\ntuner: {builtinTunerName: Random}\n"
        f"assessor: {{codeDir: {tmp_path}, classFileName: judge.py, className: Judge}}\n"
        "trial: {command: python3 t.py, codeDir: .}\n"
    )
    spec = parse_config(config, search_space={"x": {"_type": "uniform", "_value": [0, 1]}})
    assert spec.assessor is not None
    assessor = load_custom_assessor(
        attach_algorithm_code(spec, {"assessor": archive}, allowed=True).assessor  # type: ignore[arg-type]
    )
    assert assessor.assess_trial("t1", [1.0, -1.0]).value == "bad"
    assert assessor.assess_trial("t2", [1.0]).value == "good"


def test_warm_start_tuner_sees_imports_first() -> None:
    tuner = create_tuner("OptunaTPE", {"seed": 0, "n_startup_trials": 0})
    tuner.update_search_space({"x": {"_type": "choice", "_value": list(range(6))}})
    tuner.import_data([{"parameter": {"x": i}, "value": float(i)} for i in range(4)])
    assert sorted(tuner.generate_parameters(p)["x"] for p in range(2)) == [4, 5]
