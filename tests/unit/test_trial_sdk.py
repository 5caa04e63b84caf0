"""The trial SDK, the metric checks, merge_parameter, the nni shim and the runtime files."""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from kubesweep.trial import nni_shim, protocol, runtime_files, sdk
from kubesweep.trial.metrics import normalize_metric
from kubesweep.trial.nni_shim import trial as nni_trial
from kubesweep.trial.nni_shim import utils as nni_utils
from kubesweep.trial.params import merge_parameter
from kubesweep.trial.streams import parse_nni_line

TRIAL_ENV = [
    protocol.ENV_METRIC_FD,
    protocol.ENV_PARAMETER_TIMEOUT,
    protocol.ENV_SYS_DIR,
    protocol.ENV_EXPERIMENT_ID,
    protocol.ENV_TRIAL_ID,
    protocol.ENV_TRIAL_SEQ,
    protocol.NNI_PLATFORM,
    protocol.NNI_EXP_ID,
    protocol.NNI_TRIAL_JOB_ID,
    protocol.NNI_TRIAL_SEQ_ID,
    protocol.NNI_SYS_DIR,
]
RECORD = {
    "parameter_id": 4,
    "parameter_source": "algorithm",
    "parameters": {"lr": 0.01, "batch_size": 32},
    "parameter_index": 0,
}


@pytest.fixture(autouse=True)
def clean_trial(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in TRIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    sdk._reset_for_tests()
    yield
    sdk._reset_for_tests()


@pytest.fixture
def sys_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "parameter.cfg").write_text(json.dumps(RECORD))
    monkeypatch.setenv(protocol.NNI_SYS_DIR, str(tmp_path))
    return tmp_path


@pytest.fixture
def metric_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    read_fd, write_fd = os.pipe()
    monkeypatch.setenv(protocol.ENV_METRIC_FD, str(write_fd))
    yield read_fd
    os.close(write_fd)
    os.close(read_fd)


def read_reports(read_fd: int) -> list[dict[str, Any]]:
    data = os.read(read_fd, 1 << 20).decode()
    return [json.loads(line) for line in data.splitlines()]


# --- keeper transport -------------------------------------------------------------------------


def test_parameters_come_from_parameter_cfg(sys_dir: Path, metric_pipe: int) -> None:
    assert sdk.get_current_parameter() is None
    assert sdk.get_next_parameter() == {"lr": 0.01, "batch_size": 32}
    assert sdk.get_next_parameter() == {"lr": 0.01, "batch_size": 32}
    assert sdk.get_current_parameter("lr") == 0.01


def test_reports_are_json_lines_on_the_pipe(sys_dir: Path, metric_pipe: int) -> None:
    sdk.get_next_parameter()
    sdk.report_intermediate_result(0.5)
    sdk.report_intermediate_result({"default": 0.6, "loss": 1.5, "tag": "it's"})
    sdk.report_final_result(1)
    assert read_reports(metric_pipe) == [
        {"type": "PERIODICAL", "value": 0.5},
        {"type": "PERIODICAL", "value": {"default": 0.6, "loss": 1.5, "tag": "it's"}},
        {"type": "FINAL", "value": 1},
    ]


def test_missing_parameter_file_is_a_clear_error(
    tmp_path: Path, metric_pipe: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(protocol.NNI_SYS_DIR, str(tmp_path))
    monkeypatch.setenv(protocol.ENV_PARAMETER_TIMEOUT, "0")
    with pytest.raises(FileNotFoundError, match=r"parameter\.cfg is missing or empty"):
        sdk.get_next_parameter()


def test_ids_come_from_nni_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sdk.get_experiment_id() == "STANDALONE"
    assert sdk.get_trial_id() == "STANDALONE"
    assert sdk.get_sequence_id() == 0
    monkeypatch.setenv(protocol.NNI_EXP_ID, "exp1")
    monkeypatch.setenv(protocol.NNI_TRIAL_JOB_ID, "abc")
    monkeypatch.setenv(protocol.NNI_TRIAL_SEQ_ID, "7")
    assert (sdk.get_experiment_id(), sdk.get_trial_id(), sdk.get_sequence_id()) == (
        "exp1",
        "abc",
        7,
    )


# --- other transports -------------------------------------------------------------------------


def test_standalone_returns_empty_parameters_and_logs_results(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.warns(RuntimeWarning, match="without a kubesweep keeper"):
        assert sdk.get_next_parameter() == {}
    with caplog.at_level(logging.INFO, logger="nni"):
        sdk.report_intermediate_result(0.25)
        sdk.report_final_result(0.75)
    assert "Intermediate result: 0.25  (Index 0)" in caplog.text
    assert "Final result: 0.75" in caplog.text


def test_nni_platform_without_keeper_prints_nni_lines(
    sys_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(protocol.NNI_PLATFORM, "kubeflow")
    monkeypatch.setenv(protocol.NNI_TRIAL_JOB_ID, "abc")
    sdk.get_next_parameter()
    sdk.report_intermediate_result({"default": 0.5, "note": "it's"})
    sdk.report_intermediate_result(0.6)
    sdk.report_final_result(0.7)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0][len("NNISDK_MEb'") : -1])
    assert first == {
        "parameter_id": 4,
        "trial_job_id": "abc",
        "type": "PERIODICAL",
        "sequence": 0,
        "value": '{"default":0.5,"note":"it\'s"}',
    }
    log = logging.getLogger("test")
    parsed = [parse_nni_line(line, log) for line in lines]
    assert parsed == [
        ("PERIODICAL", {"default": 0.5, "note": "it's"}),
        ("PERIODICAL", 0.6),
        ("FINAL", 0.7),
    ]
    assert json.loads(lines[1][len("NNISDK_MEb'") : -1])["sequence"] == 1


def test_nni_line_parser_ignores_other_lines() -> None:
    log = logging.getLogger("test")
    assert parse_nni_line("epoch 1 loss 0.3", log) is None
    assert parse_nni_line("NNISDK_MEb'not json'", log) is None
    request = '{"type": "REQUEST_PARAMETER", "value": "0"}'
    assert parse_nni_line(f"NNISDK_MEb'{request}'", log) is None
    prefixed = 'INFO NNISDK_MEb\'{"type": "FINAL", "sequence": 0, "value": "0.5"}\'  \r'
    assert parse_nni_line(prefixed, log) == ("FINAL", 0.5)


# --- metric checks ----------------------------------------------------------------------------


class FakeScalar:
    """Quacks like a numpy scalar or a one-element tensor."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def item(self) -> Any:
        return self.value


class FakeTensor:
    def item(self) -> float:
        raise RuntimeError("a Tensor with 10 elements cannot be converted to Scalar")


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        (0.5, 0.5),
        (3, 3),
        (FakeScalar(0.25), 0.25),
        (FakeScalar(7), 7),
        (Decimal("0.5"), 0.5),
        (Fraction(1, 4), 0.25),
        ({"default": FakeScalar(0.5), "extra": [FakeScalar(1), None, "x"]}, None),
    ],
)
def test_accepted_metrics(metric: Any, expected: Any) -> None:
    result = normalize_metric(metric)
    if expected is None:
        assert result == {"default": 0.5, "extra": [1, None, "x"]}
    else:
        assert result == expected
        assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("metric", "error", "words"),
    [
        ("0.5", TypeError, "is a string"),
        (True, TypeError, "is a bool"),
        (math.nan, ValueError, "not finite"),
        (math.inf, ValueError, "not finite"),
        ({"accuracy": 0.9}, ValueError, "no 'default' key"),
        ({"default": "0.9"}, TypeError, r"metric\['default'\] is a string"),
        ({"default": 0.9, "loss": math.nan}, ValueError, "not finite"),
        ({"default": 0.9, "model": object()}, TypeError, "JSON cannot carry"),
        ([0.5], TypeError, "has type list"),
        (None, TypeError, "has type NoneType"),
        (FakeTensor(), ValueError, "not a single number"),
        (FakeScalar(False), TypeError, "returned bool"),
    ],
)
def test_refused_metrics(metric: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        normalize_metric(metric)
    assert "finite number or a dict with a numeric 'default' key" in str(caught.value) or (
        "JSON" in str(caught.value)
    )


def test_sdk_refuses_bad_metric_before_sending(sys_dir: Path, metric_pipe: int) -> None:
    sdk.get_next_parameter()
    for bad in ("high", True, math.nan, {"acc": 1.0}):
        with pytest.raises((TypeError, ValueError)):
            sdk.report_final_result(bad)
    sdk.report_final_result(0.1)
    assert read_reports(metric_pipe) == [{"type": "FINAL", "value": 0.1}]


def test_oversized_metric_is_refused(sys_dir: Path, metric_pipe: int) -> None:
    with pytest.raises(ValueError, match="too large"):
        sdk.report_final_result({"default": 1.0, "blob": "x" * 1_000_000})


# --- merge_parameter --------------------------------------------------------------------------


def test_merge_parameter_overrides_namespace_and_casts() -> None:
    args = argparse.Namespace(lr=0.1, batch_size=64, optimizer="sgd", momentum=None, hidden=1)
    merged = merge_parameter(
        args, {"lr": 1, "batch_size": 32.0, "optimizer": "adam", "momentum": 0.9, "hidden": "3"}
    )
    assert merged is args
    assert vars(args) == {
        "lr": 1.0,
        "batch_size": 32,
        "optimizer": "adam",
        "momentum": 0.9,
        "hidden": 3,
    }
    assert type(args.lr) is float
    assert type(args.batch_size) is int


def test_merge_parameter_on_dict_and_errors() -> None:
    base = {"lr": 0.1, "layers": (1, 2), "flag": True}
    assert merge_parameter(base, {"layers": [3, 4]}) == {"lr": 0.1, "layers": (3, 4), "flag": True}
    assert merge_parameter(base, None) is base
    with pytest.raises(ValueError, match="Key 'dropout' not found"):
        merge_parameter(base, {"dropout": 0.5})
    with pytest.raises(ValueError, match="Key 'dropout' not found"):
        merge_parameter(argparse.Namespace(lr=0.1), {"dropout": 0.5})
    with pytest.raises(TypeError, match=r"'flag'.*'bool'"):
        merge_parameter(base, {"flag": "false"})
    with pytest.raises(TypeError, match="'batch_size'"):
        merge_parameter({"batch_size": 32}, {"batch_size": 0.5})


def test_nni_shim_exposes_the_trial_api() -> None:
    for name in nni_shim.__all__:
        assert getattr(nni_shim, name) is getattr(sdk, name)
        assert getattr(nni_trial, name) is getattr(sdk, name)
    assert nni_utils.merge_parameter is merge_parameter


# --- runtime files ----------------------------------------------------------------------------


def test_runtime_files_layout() -> None:
    files = runtime_files()
    assert {"nni/__init__.py", "nni/utils.py", "nni/trial.py"} <= set(files)
    for module in ("__init__", "keeper", "sdk", "protocol"):
        assert f"kubesweep_trial/{module}.py" in files
    assert b"from kubesweep_trial import sdk" in files["nni/__init__.py"]


@pytest.mark.parametrize("relative", sorted(runtime_files()))
def test_runtime_is_stdlib_only_python38(relative: str) -> None:
    source = runtime_files()[relative].decode()
    tree = ast.parse(source, feature_version=(3, 8))
    assert "from __future__ import annotations" in source
    allowed = set(sys.stdlib_module_names)
    if relative.startswith("nni/"):
        allowed |= {"kubesweep_trial", "kubesweep"}  # the shim's import and its fallback
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in allowed, f"{relative} imports {name}"
            if top == "kubesweep":
                assert name == "kubesweep.trial", f"{relative} imports {name}"
