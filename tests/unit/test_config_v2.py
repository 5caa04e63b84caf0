"""NNI v2 YAML/JSON configs, and v1 ⇔ v2 equivalence."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesweep.config import (
    AzureStorage,
    ExperimentSpec,
    KubeflowTrainingService,
    LocalTrainingService,
    MountedStorage,
    NfsStorage,
    load_config_file,
    parse_config,
)
from kubesweep.errors import ConfigError

SPACE: dict[str, Any] = {"lr": {"_type": "loguniform", "_value": [0.0001, 0.1]}}

LOCAL = """\
experimentName: example_mnist
searchSpaceFile: search_space.json
trialCommand: python3 mnist.py
trialCodeDirectory: .
trialGpuNumber: 0
trialConcurrency: 2
maxExperimentDuration: 90m
maxTrialNumber: 10
tuner:
  name: TPE
  classArgs:
    optimize_mode: maximize
assessor:
  name: Medianstop
  classArgs:
    optimize_mode: maximize
    start_step: 5
trainingService:
  platform: local
  useActiveGpu: true
  maxTrialNumberPerGpu: 2
  gpuIndices: [0, 1]
"""

KUBEFLOW = """\
experimentName: example_mnist_pytorch
searchSpaceFile: search_space.json
trialCodeDirectory: .
trialConcurrency: 1
maxExperimentDuration: 1h
maxTrialNumber: 10
tuner:
  name: TPE
  classArgs:
    optimize_mode: minimize
trainingService:
  platform: kubeflow
  operator: pytorch-operator
  apiVersion: v1alpha2
  storage:
    storageType: nfs
    server: 10.10.10.10
    path: /var/nfs/general
  master:
    replicas: 1
    command: python3 dist_mnist.py
    gpuNumber: 1
    cpuNumber: 1
    memorySize: 2048
    dockerImage: msranni/nni:latest
    codeDirectory: .
  worker:
    replicas: 1
    command: python3 dist_mnist.py
    gpuNumber: 0
    cpuNumber: 1
    memorySize: 2gb
    dockerImage: msranni/nni:latest
"""


def parse(text: str, **kwargs: Any) -> ExperimentSpec:
    kwargs.setdefault("search_space", SPACE)
    return parse_config(text, **kwargs)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def expect_error(text: str, field: str, needle: str | None, *fragments: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    err = info.value
    assert err.field == field
    if needle is not None:
        assert err.line == line_of(text, needle)
        assert f"{field} (line {err.line}):" in str(err)
    for fragment in fragments:
        assert fragment in str(err)
    return err


def test_local(tmp_path: Path) -> None:
    (tmp_path / "search_space.json").write_text(json.dumps(SPACE))
    (tmp_path / "config.yml").write_text(LOCAL)
    spec = load_config_file(tmp_path / "config.yml")
    assert spec.source_format == "v2"
    assert spec.search_space == SPACE
    assert spec.trial_code_directory == str(tmp_path)
    assert spec.max_experiment_duration == 5400
    assert spec.training_service == LocalTrainingService(
        use_active_gpu=True, max_trial_number_per_gpu=2, gpu_indices=[0, 1]
    )
    assert ExperimentSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_kubeflow() -> None:
    spec = parse(KUBEFLOW)
    ts = spec.training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.storage == NfsStorage(server="10.10.10.10", path="/var/nfs/general")
    assert ts.master is not None
    assert ts.worker is not None
    assert (ts.master.memory_mb, ts.worker.memory_mb) == (2048, 2048)
    assert spec.trial_command == "python3 dist_mnist.py"
    assert ts.reuse_mode is False  # NNI v2 defaults to True; kubesweep never reuses
    assert ExperimentSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_json_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(yaml.safe_load(LOCAL), indent=2))
    (tmp_path / "search_space.json").write_text(json.dumps(SPACE))
    spec = load_config_file(tmp_path / "config.json")
    assert spec.platform == "local"
    bad = json.dumps(yaml.safe_load(LOCAL), indent=2).replace(
        '"trialConcurrency": 2', '"trialConcurrency": 0'
    )
    with pytest.raises(ConfigError) as info:
        parse(bad)
    assert info.value.field == "trialConcurrency"
    assert info.value.line == line_of(bad, "trialConcurrency")


def test_invalid_json_text() -> None:
    with pytest.raises(ConfigError) as info:
        parse('{"trainingService": {"platform": "local"},\n}')
    assert info.value.line == 2
    assert "not valid JSON" in str(info.value)


def test_inline_search_space_errors_have_lines() -> None:
    text = LOCAL.replace(
        "searchSpaceFile: search_space.json\n",
        "searchSpace:\n  lr:\n    _type: loguniform\n    _value: [0, 1]\n",
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.field == "searchSpace.lr._value"
    assert info.value.line == line_of(text, "_value")
    assert "use a positive lower bound" in str(info.value)
    good = text.replace("[0, 1]", "[0.001, 1]", 1)
    assert parse_config(good).search_space == {"lr": {"_type": "loguniform", "_value": [0.001, 1]}}


def test_search_space_argument_overrides_the_file() -> None:
    assert parse(LOCAL).search_space == SPACE


def test_missing_search_space_names_search_space_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(LOCAL.replace("searchSpaceFile: search_space.json\n", ""))
    assert info.value.field == "searchSpaceFile"


def test_kubeflow_defaults_and_shortcuts() -> None:
    text = KUBEFLOW.replace("    dockerImage: msranni/nni:latest\n", "").replace(
        "  platform: kubeflow\n", "  platform: kubeflow\n  trialCommand: echo hi\n  namespace: ml\n"
    )
    spec = parse(text)
    ts = spec.training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.master is not None
    assert ts.master.image == "msranni/nni:latest"
    assert (spec.trial_command, ts.namespace) == ("echo hi", "ml")


@pytest.mark.parametrize(
    ("value", "mb"),
    [("2048", 2048), ("2gb", 2048), ("2GB", 2048), ("1.5gb", 1536), ("1tb", 1048576),
     ("512Mi", 512), ("4Gi", 4096), ("1024kb", 1), ("1048576b", 1)],
)  # fmt: skip
def test_memory_sizes(value: str, mb: int) -> None:
    ts = parse(KUBEFLOW.replace("memorySize: 2gb", f"memorySize: {value}")).training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.worker is not None
    assert ts.worker.memory_mb == mb


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("2d", 172800), ("1.5h", 5400), ("7200", 7200),
     ("2H", 7200)],
)  # fmt: skip
def test_durations(value: str, seconds: float) -> None:
    text = LOCAL.replace("maxExperimentDuration: 90m", f"maxExperimentDuration: {value}")
    assert parse(text + f"maxTrialDuration: {value}\n").max_trial_duration == seconds
    assert parse(text).max_experiment_duration == seconds


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "fragment"),
    [
        ("trialConcurrency: 2", "trialConcurrency: 0", "trialConcurrency", "trialConcurrency",
         "must be an integer >= 1, got 0"),
        ("maxExperimentDuration: 90m", "maxExperimentDuration: 3 hours", "maxExperimentDuration",
         "maxExperimentDuration", "30s, 10m, 1.5h or 2d"),
        ("maxExperimentDuration: 90m", "maxExperimentDuration: -5", "maxExperimentDuration",
         "maxExperimentDuration", "positive number"),
        ("trialCommand: python3 mnist.py\n", "", "trialCommand", None, "is required"),
        ("  platform: local", "  platform: remote", "trainingService.platform", "platform:",
         "remote is not supported by kubesweep; supported: local, kubeflow"),
        ("  useActiveGpu: true", "  useActivGpu: true", "trainingService.useActivGpu",
         "useActivGpu", "did you mean 'useActiveGpu'?"),
        ("tuner:", "tunner:", "tunner", "tunner", "did you mean 'tuner'?"),
        ("  name: TPE", "  name: TPE\n  className: x.Y", "tuner.className", "className",
         "cannot be combined with name"),
        ("    optimize_mode: maximize\nassessor", "    optimize_mode: best\nassessor",
         "tuner.classArgs.optimize_mode", "optimize_mode: best", "maximize or minimize"),
        ("trialConcurrency: 2", "trialConcurrency: 2\nuseAnnotation: true", "useAnnotation",
         "useAnnotation", "annotation is not supported"),
        ("trialConcurrency: 2", "trialConcurrency: 2\nsharedStorage:\n  storageType: NFS",
         "sharedStorage", "sharedStorage", "not supported by kubesweep"),
        ("trialConcurrency: 2", "trialConcurrency: 2\nsearchSpace: {}", "searchSpace",
         "searchSpace:", "cannot be combined with searchSpaceFile"),
        ("trialConcurrency: 2", "trialConcurrency: 2\nauthorName: me", "authorName", "authorName",
         "mixes NNI v1 keys"),
    ],
)  # fmt: skip
def test_local_errors(old: str, new: str, field: str, needle: str | None, fragment: str) -> None:
    assert old in LOCAL
    expect_error(LOCAL.replace(old, new, 1), field, needle, fragment)


def test_hybrid_list_refused() -> None:
    text = LOCAL[: LOCAL.index("trainingService:")]
    text += "trainingService:\n  - platform: local\n  - platform: kubeflow\n"
    expect_error(text, "trainingService", "trainingService", "hybrid mode")


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "fragment"),
    [
        ("  master:", "  ps:", "trainingService.ps", "  ps:", "pytorch-operator jobs have no ps"),
        ("operator: pytorch-operator", "operator: tf-operator", "trainingService.master",
         "  master:", "tf-operator jobs have no master role"),
        ("    storageType: nfs", "    storageType: s3", "trainingService.storage.storageType",
         "storageType", "nfs, azureStorage, mounted"),
        ("    storageType: nfs", "    storageType: azureStorage",
         "trainingService.storage.server", "server:", "does not apply to storageType"),
        ("    path: /var/nfs/general\n", "", "trainingService.storage.path", "  storage:",
         "is required"),
        ("    memorySize: 2gb", "    memorySize: 4g", "trainingService.worker.memorySize",
         "memorySize: 4g", "e.g. 8gb or 512Mi"),
        ("    cpuNumber: 1\n    memorySize: 2gb", "    cpuNumber: 0\n    memorySize: 2gb",
         "trainingService.worker.cpuNumber", "cpuNumber: 0", "number > 0"),
        ("    gpuNumber: 0", "    gpuNumbr: 0", "trainingService.worker.gpuNumbr", "gpuNumbr",
         "did you mean 'gpuNumber'?"),
        ("    codeDirectory: .", "    codeDirectory: other", "trainingService.master.codeDirectory",
         "codeDirectory", "one code directory per experiment"),
    ],
)  # fmt: skip
def test_kubeflow_errors(old: str, new: str, field: str, needle: str, fragment: str) -> None:
    assert old in KUBEFLOW
    text = KUBEFLOW.replace(old, new, 1)
    with pytest.raises(ConfigError) as info:
        parse(text, base_dir=Path("/exp"))
    err = info.value
    assert err.field == field
    assert err.line == line_of(text, needle)
    assert fragment in str(err)


def test_pytorch_without_master() -> None:
    text = KUBEFLOW[: KUBEFLOW.index("  master:")] + KUBEFLOW[KUBEFLOW.index("  worker:") :]
    expect_error(text, "trainingService.master", "trainingService:", "is required for pytorch")


def test_azure_and_mounted_storage() -> None:
    azure = (
        "    storageType: azureStorage\n    azureAccount: myaccount\n    azureShare: myshare\n"
        "    keyVaultName: myvault\n    keyVaultKey: mykey\n"
    )
    nfs = "    storageType: nfs\n    server: 10.10.10.10\n    path: /var/nfs/general\n"
    ts = parse(KUBEFLOW.replace(nfs, azure)).training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.storage == AzureStorage(
        account_name="myaccount", share="myshare", key_vault_name="myvault", key_vault_key="mykey"
    )
    ts = parse(
        KUBEFLOW.replace(nfs, "    storageType: mounted\n    path: /mnt/shared\n")
    ).training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.storage == MountedStorage(path="/mnt/shared")
    expect_error(KUBEFLOW.replace(nfs, "    storageType: mounted\n    path: rel\n"),
                 "trainingService.storage.path", "path: rel", "absolute path")  # fmt: skip


def test_reuse_mode_is_recorded() -> None:
    text = KUBEFLOW.replace("  platform: kubeflow\n", "  platform: kubeflow\n  reuseMode: true\n")
    ts = parse(text).training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.reuse_mode is True


def test_custom_tuner_and_advisor(tmp_path: Path) -> None:
    text = LOCAL.replace(
        "  name: TPE\n", "  className: my_tuner.MyTuner\n  codeDirectory: tuners\n", 1
    )
    spec = parse(text, base_dir=tmp_path)
    assert spec.tuner.class_name == "my_tuner.MyTuner"
    assert spec.tuner.code_directory == str(tmp_path / "tuners")
    advisor = LOCAL[: LOCAL.index("tuner:")] + "advisor:\n  name: Hyperband\n"
    advisor += LOCAL[LOCAL.index("trainingService:") :]
    assert parse(advisor).tuner.name == "Hyperband"


def test_v1_and_v2_normalise_to_the_same_spec(tmp_path: Path) -> None:
    loader = importlib.util.spec_from_file_location(
        "_v1_configs", Path(__file__).with_name("test_config_v1.py")
    )
    assert loader is not None
    assert loader.loader is not None
    v1 = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(v1)
    for v1_text, v2_text in ((v1.PYTORCH, KUBEFLOW), (v1.LOCAL, LOCAL)):
        old = parse(v1_text, base_dir=tmp_path)
        new = parse(v2_text, base_dir=tmp_path)
        assert old.source_format == "v1"
        assert old.model_copy(update={"source_format": "v2", "author": ""}) == new


def test_undetectable_format() -> None:
    with pytest.raises(ConfigError) as info:
        parse("experimentName: x\ntrialConcurrency: 1\n")
    assert "add trainingServicePlatform (v1) or trainingService (v2)" in str(info.value)
