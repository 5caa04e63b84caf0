"""NNI v1 YAML configs: the seed document, NNI's examples, and every error path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesweep.config import (
    AzureStorage,
    ExperimentSpec,
    KubeflowTrainingService,
    LocalTrainingService,
    NfsStorage,
    PlaceholderWarning,
    load_config_file,
    parse_config,
)
from kubesweep.errors import ConfigError

SPACE: dict[str, Any] = {"lr": {"_type": "loguniform", "_value": [0.0001, 0.1]}}

# Verbatim from the NNI kubeflow-mode document (shared/seed), placeholders included.
SEED = """\
authorName: your_name
experimentName: example_mnist
# how many trials could be concurrently running
trialConcurrency: 4
# maximum experiment running duration
maxExecDuration: 3h
# empty means never stop
maxTrialNum: 100
# choice: local, remote, pai, kubeflow
trainingServicePlatform: kubeflow
# choice: true, false
useAnnotation: false
tuner:
  builtinTunerName: TPE
  classArgs:
    #choice: maximize, minimize
    optimize_mode: maximize
trial:
  codeDir: ~/nni/examples/trials/mnist
  ps:
    replicas: 1
    command: python mnist-keras.py
    gpuNum: 0
    cpuNum: 1
    memoryMB: 8196
    image: {your_docker_image_for_tensorflow_ps}
  worker:
    replicas: 1
    command: python mnist-keras.py
    gpuNum: 2
    cpuNum: 1
    memoryMB: 8196
    image: {your_docker_image_for_tensorflow_worker}
kubeflowConfig:
  operator: tf-operator
  storage: nfs
  nfs:
    server: {your_nfs_server}
    path: {your_nfs_server_exported_path}
"""

SEED_AZURE_BLOCK = """\
kubeflowConfig:
  operator: tf-operator
  storage: azureStorage
  keyVault:
    vaultName: {your_vault_name}
    name: {your_secert_name}
  azureStorage:
    accountName: {your_storage_account_name}
    azureShare: {your_azure_share_name}
"""

# Shaped like NNI's examples/trials/mnist-pytorch/config_kubeflow.yml.
PYTORCH = """\
authorName: default
experimentName: example_mnist_pytorch
trialConcurrency: 1
maxExecDuration: 1h
maxTrialNum: 10
trainingServicePlatform: kubeflow
searchSpacePath: search_space.json
useAnnotation: false
tuner:
  builtinTunerName: TPE
  classArgs:
    optimize_mode: minimize
trial:
  codeDir: .
  master:
    replicas: 1
    command: python3 dist_mnist.py
    gpuNum: 1
    cpuNum: 1
    memoryMB: 2048
    image: msranni/nni:latest
  worker:
    replicas: 1
    command: python3 dist_mnist.py
    gpuNum: 0
    cpuNum: 1
    memoryMB: 2048
    image: msranni/nni:latest
kubeflowConfig:
  operator: pytorch-operator
  apiVersion: v1alpha2
  nfs:
    server: 10.10.10.10
    path: /var/nfs/general
"""

LOCAL = """\
authorName: default
experimentName: example_mnist
trialConcurrency: 2
maxExecDuration: 90m
maxTrialNum: 10
trainingServicePlatform: local
searchSpacePath: search_space.json
useAnnotation: false
tuner:
  builtinTunerName: TPE
  classArgs:
    optimize_mode: maximize
assessor:
  builtinAssessorName: Medianstop
  classArgs:
    optimize_mode: maximize
    start_step: 5
trial:
  command: python3 mnist.py
  codeDir: .
  gpuNum: 0
localConfig:
  useActiveGpu: true
  maxTrialNumPerGpu: 2
  gpuIndices: "0,1"
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


def quiet(text: str, **kwargs: Any) -> ExperimentSpec:
    with pytest.warns(PlaceholderWarning):
        return parse(text, **kwargs)


def test_seed_loads() -> None:
    with pytest.warns(PlaceholderWarning) as record:
        spec = parse(SEED)
    messages = [str(w.message) for w in record]
    assert len(messages) == 4
    assert messages[0].startswith("trial.ps.image (line 26): {your_docker_image_for_tensorflow_ps}")
    assert spec.source_format == "v1"
    assert spec.name == "example_mnist"
    assert spec.author == "your_name"
    assert spec.trial_concurrency == 4
    assert spec.max_experiment_duration == 3 * 3600
    assert spec.max_trial_number == 100
    assert spec.tuner.name == "TPE"
    assert spec.tuner.class_args == {"optimize_mode": "maximize"}
    assert spec.trial_command == "python mnist-keras.py"
    assert spec.trial_code_directory == "~/nni/examples/trials/mnist"  # no base_dir: as written
    ts = spec.training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.operator == "tf-operator"
    assert ts.storage == NfsStorage(
        server="{your_nfs_server}", path="{your_nfs_server_exported_path}"
    )
    assert ts.ps is not None
    assert ts.ps.image == "{your_docker_image_for_tensorflow_ps}"
    assert ts.worker is not None
    assert (ts.worker.gpu_number, ts.worker.cpu_number, ts.worker.memory_mb) == (2, 1, 8196)
    assert ts.master is None
    assert list(ts.roles) == ["worker", "ps"]
    assert ts.reuse_mode is False


def test_seed_round_trips_through_json() -> None:
    spec = quiet(SEED)
    data = json.loads(json.dumps(spec.model_dump(mode="json")))
    assert ExperimentSpec.model_validate(data) == spec


def test_seed_azure_variant_loads() -> None:
    text = SEED[: SEED.index("kubeflowConfig:")] + SEED_AZURE_BLOCK
    spec = quiet(text)
    assert isinstance(spec.training_service, KubeflowTrainingService)
    assert spec.training_service.storage == AzureStorage(
        account_name="{your_storage_account_name}",
        share="{your_azure_share_name}",
        key_vault_name="{your_vault_name}",
        key_vault_key="{your_secert_name}",
    )


def test_seed_file_resolves_paths_and_reads_search_space(tmp_path: Path) -> None:
    (tmp_path / "search_space.json").write_text(json.dumps(SPACE))
    config = tmp_path / "config.yml"
    config.write_text(
        SEED.replace("useAnnotation", "searchSpacePath: search_space.json\nuseAnnotation")
    )
    with pytest.warns(PlaceholderWarning):
        spec = load_config_file(config)
    assert spec.search_space == SPACE
    assert spec.trial_code_directory == str(Path("~/nni/examples/trials/mnist").expanduser())


def test_pytorch_example() -> None:
    spec = parse(PYTORCH)
    ts = spec.training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert ts.operator == "pytorch-operator"
    assert ts.api_version == "v1alpha2"
    assert ts.storage == NfsStorage(server="10.10.10.10", path="/var/nfs/general")
    assert ts.primary_role == "master"
    assert spec.trial_command == "python3 dist_mnist.py"
    assert spec.tuner.class_args["optimize_mode"] == "minimize"


def test_local_config(tmp_path: Path) -> None:
    (tmp_path / "search_space.json").write_text(json.dumps(SPACE))
    (tmp_path / "config.yml").write_text(LOCAL)
    spec = load_config_file(tmp_path / "config.yml")
    assert spec.platform == "local"
    assert spec.trial_command == "python3 mnist.py"
    assert spec.trial_code_directory == str(tmp_path)
    assert spec.max_experiment_duration == 90 * 60
    assert spec.assessor is not None
    assert spec.assessor.name == "Medianstop"
    assert spec.training_service == LocalTrainingService(
        use_active_gpu=True, max_trial_number_per_gpu=2, gpu_indices=[0, 1]
    )
    assert ExperimentSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_missing_search_space_names_search_space_path() -> None:
    text = LOCAL.replace("searchSpacePath: search_space.json\n", "")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.field == "searchSpacePath"


def test_search_space_file_is_not_read_without_base_dir() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(LOCAL)
    assert info.value.field == "searchSpacePath"
    assert info.value.line == line_of(LOCAL, "searchSpacePath")


def test_missing_search_space_file(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(LOCAL)
    with pytest.raises(ConfigError) as info:
        load_config_file(tmp_path / "config.yml")
    assert info.value.field == "searchSpacePath"
    assert "does not exist" in str(info.value)


def test_custom_tuner_and_advisor(tmp_path: Path) -> None:
    custom = "tuner:\n  codeDir: tuners\n  classFileName: my.py\n  className: MyTuner\n"
    text = LOCAL.replace("tuner:\n  builtinTunerName: TPE\n", custom)
    spec = parse(text, base_dir=tmp_path)
    assert spec.tuner.class_name == "MyTuner"
    assert spec.tuner.class_file_name == "my.py"
    assert spec.tuner.code_directory == str(tmp_path / "tuners")
    advisor = LOCAL[: LOCAL.index("tuner:")] + "advisor:\n  builtinAdvisorName: BOHB\n"
    advisor += LOCAL[LOCAL.index("trial:") :]
    assert parse(advisor).tuner.name == "BOHB"


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "fragment"),
    [
        ("trialConcurrency: 2", "trialConcurrency: 0", "trialConcurrency", "trialConcurrency",
         "must be an integer from 1 to 99999, got 0"),
        ("trialConcurrency: 2", "trialConcurrency: four", "trialConcurrency", "trialConcurrency",
         "got 'four'"),
        ("maxExecDuration: 90m", "maxExecDuration: 1.5h", "maxExecDuration", "maxExecDuration",
         "e.g. 30m, 3h, 2d"),
        ("maxExecDuration: 90m", "maxExecDuration: 0m", "maxExecDuration", "maxExecDuration",
         "positive whole number"),
        ("maxTrialNum: 10", "maxTrialNum: -1", "maxTrialNum", "maxTrialNum", "from 1 to 99999"),
        ("useAnnotation: false", "useAnnotation: true", "useAnnotation", "useAnnotation",
         "NNI 3 removed it"),
        ("useAnnotation: false", "useAnnotation: 'no'", "useAnnotation", "useAnnotation",
         "must be true or false"),
        ("useAnnotation: false", "useAnnotation: false\nmultiPhase: true", "multiPhase",
         "multiPhase", "set it to false"),
        ("useAnnotation: false", "useAnnotation: false\nlogLevel: verbose", "logLevel",
         "logLevel", "must be one of trace, debug"),
        ("trainingServicePlatform: local", "trainingServicePlatform: pai",
         "trainingServicePlatform", "trainingServicePlatform",
         "pai is not supported by kubesweep; supported: local, kubeflow"),
        ("trainingServicePlatform: local", "trainingServicePlatform: cloud",
         "trainingServicePlatform", "trainingServicePlatform", "unknown platform 'cloud'"),
        ("trialConcurrency", "trialConcurency", "trialConcurency", "trialConcurency",
         "did you mean 'trialConcurrency'?"),
        ("  gpuNum: 0", "  gpuNumber: 0", "trial.gpuNumber", "gpuNumber",
         "did you mean 'gpuNum'?"),
        ("  maxTrialNumPerGpu: 2", "  maxTrialNumPerGPU: 2", "localConfig.maxTrialNumPerGPU",
         "maxTrialNumPerGPU", "did you mean 'maxTrialNumPerGpu'?"),
        ("    optimize_mode: maximize\nassessor", "    optimize_mode: max\nassessor",
         "tuner.classArgs.optimize_mode", "optimize_mode: max", "maximize or minimize"),
        ("  builtinTunerName: TPE", "  builtinTunerName: TPE\n  className: X", "tuner.className",
         "className", "cannot be combined with builtinTunerName"),
        ("  gpuIndices: \"0,1\"", "  gpuIndices: \"0,a\"", "localConfig.gpuIndices",
         "gpuIndices", "GPU indices"),
        ("  command: python3 mnist.py\n", "", "trial.command", "trial:", "is required"),
        ("authorName: default\n", "", "authorName", None, "is required"),
    ],
)  # fmt: skip
def test_local_errors(old: str, new: str, field: str, needle: str | None, fragment: str) -> None:
    assert old in LOCAL
    expect_error(LOCAL.replace(old, new, 1), field, needle, fragment)


def test_kubeflow_config_refused_for_local() -> None:
    text = LOCAL + "kubeflowConfig:\n  operator: tf-operator\n"
    expect_error(text, "kubeflowConfig", "kubeflowConfig", "trainingServicePlatform: kubeflow")


def test_tf_operator_with_master() -> None:
    text = SEED.replace("  ps:", "  master:", 1)
    with pytest.warns(PlaceholderWarning):
        expect_error(text, "trial.master", "master:", "tf-operator jobs have no master role",
                     "pytorch-operator")  # fmt: skip


def test_tf_operator_without_worker() -> None:
    text = SEED[: SEED.index("  worker:")] + SEED[SEED.index("kubeflowConfig:") :]
    with pytest.warns(PlaceholderWarning):
        expect_error(text, "trial.worker", "trial:", "is required for tf-operator")


def test_pytorch_without_master() -> None:
    text = PYTORCH.replace("  master:", "  ps:")
    expect_error(text, "trial.ps", "  ps:", "pytorch-operator jobs have no ps role")
    text = PYTORCH[: PYTORCH.index("  master:")] + PYTORCH[PYTORCH.index("  worker:") :]
    expect_error(text, "trial.master", "trial:", "is required for pytorch-operator")


def test_pytorch_master_has_one_replica() -> None:
    text = PYTORCH.replace("replicas: 1", "replicas: 2", 1)
    expect_error(text, "trial.master.replicas", "replicas: 2", "exactly one replica")


def test_role_fields_are_required_and_typed() -> None:
    text = PYTORCH.replace("    memoryMB: 2048\n", "", 1)
    expect_error(text, "trial.master.memoryMB", "  master:", "is required")
    text = PYTORCH.replace("cpuNum: 1", "cpuNum: 0", 1)
    expect_error(text, "trial.master.cpuNum", "cpuNum: 0", "from 1 to 99999")


def test_storage_mismatches() -> None:
    azure_no_storage = SEED_AZURE_BLOCK.replace("  storage: azureStorage\n", "")
    text = PYTORCH[: PYTORCH.index("kubeflowConfig:")] + azure_no_storage.replace(
        "tf-operator", "pytorch-operator"
    )
    expect_error(text, "kubeflowConfig.storage", "kubeflowConfig:",
                 "please set kubeflowConfig.storage: azureStorage")  # fmt: skip
    text = PYTORCH.replace("  nfs:\n    server: 10.10.10.10\n    path: /var/nfs/general\n", "")
    expect_error(text, "kubeflowConfig.nfs", "kubeflowConfig:", "is required")
    text = PYTORCH.replace("  apiVersion: v1alpha2", "  storage: azureStorage")
    expect_error(text, "kubeflowConfig.nfs", "  nfs:", "only applies to storage: nfs")
    no_vault = SEED_AZURE_BLOCK.replace("  keyVault:\n    vaultName: {your_vault_name}\n", "")
    text = SEED[: SEED.index("kubeflowConfig:")] + no_vault.replace(
        "    name: {your_secert_name}\n", ""
    )
    with pytest.warns(PlaceholderWarning):
        expect_error(text, "kubeflowConfig.keyVault", "kubeflowConfig:", "is required")


def test_azure_names_are_checked_unless_placeholders() -> None:
    block = SEED_AZURE_BLOCK.replace("{your_storage_account_name}", "bad_name!")
    with pytest.warns(PlaceholderWarning):
        expect_error(SEED[: SEED.index("kubeflowConfig:")] + block,
                     "kubeflowConfig.azureStorage.accountName", "accountName", "3-31")  # fmt: skip


def test_unsupported_operator() -> None:
    text = PYTORCH.replace("pytorch-operator", "mpi-operator")
    expect_error(text, "kubeflowConfig.operator", "operator:", "tf-operator, pytorch-operator")


def test_reuse_is_recorded_and_namespace_kept() -> None:
    text = PYTORCH.replace("  apiVersion: v1alpha2", "  reuse: true\n  namespace: ml")
    ts = parse(text).training_service
    assert isinstance(ts, KubeflowTrainingService)
    assert (ts.reuse_mode, ts.namespace, ts.api_version) == (True, "ml", "v1")


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30), ("10m", 600), ("1h", 3600), ("2d", 172800)]
)
def test_durations(value: str, seconds: int) -> None:
    text = LOCAL.replace(
        "maxExecDuration: 90m", f"maxExecDuration: {value}\nmaxTrialDuration: {value}"
    )
    spec = parse(text)
    assert spec.max_experiment_duration == seconds
    assert spec.max_trial_duration == seconds


def test_unlimited_when_absent() -> None:
    text = LOCAL.replace("maxExecDuration: 90m\nmaxTrialNum: 10\n", "")
    spec = parse(text)
    assert (spec.max_experiment_duration, spec.max_trial_number) == (None, None)


def test_malformed_yaml_reports_line_and_hint() -> None:
    text = LOCAL.replace("  gpuNum: 0", "\tgpuNum: 0")
    with pytest.raises(ConfigError) as info:
        parse(text, source="config.yml")
    assert info.value.field == "config.yml"
    assert info.value.line == line_of(text, "gpuNum")
    assert "not tabs" in str(info.value)


@pytest.mark.parametrize("text", ["", "# nothing\n", "- a\n- b\n", "just text\n"])
def test_empty_or_non_mapping_document(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.field == "<config>"


def test_duplicate_key() -> None:
    text = LOCAL + "trialConcurrency: 3\n"
    expect_error(text, "trialConcurrency", "trialConcurrency: 3", "duplicate key (first at line 3)")


def test_mixed_v1_and_v2_keys() -> None:
    text = LOCAL + "trialCommand: python3 mnist.py\n"
    expect_error(text, "trialCommand", "trialCommand", "mixes NNI v1 keys", "use one format")


def test_extension_block_is_kept() -> None:
    spec = parse(LOCAL + "kubesweep:\n  priority: high\n")
    assert spec.extension == {"priority": "high"}
