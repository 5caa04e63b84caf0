"""NNI v1 YAML (``nni/tools/nnictl/config_schema.py``) into ExperimentSpec fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubesweep.config.extension import read_extension
from kubesweep.config.reader import Section
from kubesweep.config.spec import (
    AlgorithmSpec,
    AzureStorage,
    KubeflowTrainingService,
    LocalTrainingService,
    NfsStorage,
    RoleSpec,
)
from kubesweep.config.values import (
    LOG_LEVELS,
    Draft,
    check_operator_roles,
    check_platform,
    class_args,
    gpu_indices,
    refuse_annotation,
    resolve_path,
    v1_duration,
)

__all__ = ["parse_v1"]

_TOP = (
    "authorName",
    "experimentName",
    "description",
    "trialConcurrency",
    "maxExecDuration",
    "maxTrialNum",
    "maxTrialDuration",
    "trainingServicePlatform",
    "searchSpacePath",
    "useAnnotation",
    "multiPhase",
    "multiThread",
    "debug",
    "versionCheck",
    "nniManagerIp",
    "logDir",
    "logLevel",
    "logCollection",
    "tuner",
    "assessor",
    "advisor",
    "trial",
    "kubeflowConfig",
    "localConfig",
    "kubesweep",
)
_BUILTIN_KEY = {
    "tuner": "builtinTunerName",
    "assessor": "builtinAssessorName",
    "advisor": "builtinAdvisorName",
}
_CUSTOM_KEYS = ("codeDir", "classFileName", "className")
_NAS_MODES = ("classic_mode", "enas_mode", "oneshot_mode", "darts_mode")
_ROLE_KEYS = (
    "replicas",
    "command",
    "gpuNum",
    "cpuNum",
    "memoryMB",
    "image",
    "privateRegistryAuthPath",
)
_KUBEFLOW_KEYS = (
    "operator",
    "apiVersion",
    "storage",
    "nfs",
    "keyVault",
    "azureStorage",
    "uploadRetryCount",
    "reuse",
    "namespace",
)
_STORAGE_KEYS = ("storage", "nfs", "keyVault", "azureStorage", "uploadRetryCount")
_NAME_RE, _ACCOUNT_RE, _SHARE_RE = (
    r"[0-9a-zA-Z-]{1,127}",
    r"[0-9a-zA-Z-]{3,31}",
    r"[0-9a-zA-Z-]{3,63}",
)


def parse_v1(root: Section, base_dir: Path | None) -> Draft:
    """Validate an NNI v1 config and map it onto ExperimentSpec field names."""
    platform = check_platform(root, "trainingServicePlatform")
    root.check_keys(_TOP)
    other = "localConfig" if platform == "kubeflow" else "kubeflowConfig"
    root.forbid(other, f"only applies to trainingServicePlatform: {other[:-6]}; remove it")
    root.require("useAnnotation", "set useAnnotation: false")
    refuse_annotation(root)
    if root.get_bool("multiPhase"):
        raise root.error("multiPhase", "multi-phase trials are not supported; set it to false")
    for key in ("multiThread", "versionCheck"):
        root.get_bool(key)
    root.get_str("logDir")
    root.get_str("logCollection", choices=("http", "none"))
    debug = root.get_bool("debug")
    tuner, assessor = _algorithms(root, base_dir)
    trial = root.req_section("trial", "e.g. trial: {command: python3 mnist.py, codeDir: .}")
    code_dir = resolve_path(trial.req_str("codeDir", "the folder holding the trial code"), base_dir)
    mode = trial.get_str("nasMode", choices=_NAS_MODES)
    if mode not in (None, "classic_mode"):
        raise trial.error("nasMode", f"{mode} (NAS) is not supported by kubesweep; remove nasMode")
    service: LocalTrainingService | KubeflowTrainingService
    if platform == "local":
        trial.check_keys(("command", "codeDir", "gpuNum", "nasMode"))
        command = trial.req_str("command", "the shell command that runs one trial")
        gpus = trial.get_int("gpuNum", low=0, high=99999) or 0
        service = _local(root)
    else:
        trial.check_keys(("codeDir", "nasMode", "ps", "master", "worker"))
        service = _kubeflow(root, trial, base_dir)
        command = service.roles[service.primary_role].command
        gpus = 0
    fields: dict[str, Any] = {
        "source_format": "v1",
        "name": root.req_str("experimentName", "e.g. experimentName: mnist"),
        "description": root.get_str("description") or "",
        "author": root.req_str("authorName", "NNI v1 requires it; any string, e.g. your name"),
        "trial_command": command,
        "trial_code_directory": code_dir,
        "trial_concurrency": root.req_int(
            "trialConcurrency", "how many trials run at once, e.g. 4", low=1, high=99999
        ),
        "trial_gpu_number": gpus,
        "max_trial_number": root.get_int("maxTrialNum", low=1, high=99999),
        "max_experiment_duration": v1_duration(root, "maxExecDuration"),
        "max_trial_duration": v1_duration(root, "maxTrialDuration"),
        "tuner": tuner,
        "assessor": assessor,
        "platform": platform,
        "training_service": service,
        "nni_manager_ip": root.get_str("nniManagerIp"),
        "debug": debug,
        "log_level": root.get_str("logLevel", choices=LOG_LEVELS) or ("debug" if debug else "info"),
        "extension": read_extension(root, tuner.class_args),
    }
    return Draft(
        fields=fields,
        search_space_key="searchSpacePath",
        search_space_file=root.get_str("searchSpacePath"),
        search_space_line=root.line_of("searchSpacePath"),
    )


def _algorithms(root: Section, base_dir: Path | None) -> tuple[AlgorithmSpec, AlgorithmSpec | None]:
    advisor = _algorithm(root, "advisor", base_dir)
    if advisor is not None:
        for key in ("tuner", "assessor"):
            root.forbid(
                key, "cannot be combined with advisor; an advisor replaces both, remove one"
            )
        return advisor, None
    tuner = _algorithm(root, "tuner", base_dir)
    if tuner is None:
        raise root.error("tuner", "is required; e.g. tuner: {builtinTunerName: TPE}")
    return tuner, _algorithm(root, "assessor", base_dir)


def _algorithm(root: Section, key: str, base_dir: Path | None) -> AlgorithmSpec | None:
    sec = root.section(key)
    if sec is None:
        return None
    builtin = _BUILTIN_KEY[key]
    extra = {"tuner": ("includeIntermediateResults", "gpuIndices"), "advisor": ("gpuIndices",)}
    sec.check_keys((builtin, *_CUSTOM_KEYS, "classArgs", *extra.get(key, ())))
    gpu_indices(sec, "gpuIndices", allow_list=False)  # validated; the tuner service uses no GPU
    common: dict[str, Any] = {
        "class_args": class_args(sec),
        "include_intermediate_results": sec.get_bool("includeIntermediateResults"),
    }
    custom = [k for k in _CUSTOM_KEYS if k in sec.data]
    if sec.has(builtin):
        if custom:
            raise sec.error(custom[0], f"cannot be combined with {builtin}; use one or the other")
        return AlgorithmSpec(name=sec.req_str(builtin, ""), **common)
    if not custom:
        raise sec.error(
            builtin, f"is required (or codeDir + classFileName + className for a custom {key})"
        )
    hint = f"a custom {key} needs codeDir, classFileName and className"
    return AlgorithmSpec(
        class_name=sec.req_str("className", hint),
        class_file_name=sec.req_str("classFileName", hint),
        code_directory=resolve_path(sec.req_str("codeDir", hint), base_dir),
        **common,
    )


def _local(root: Section) -> LocalTrainingService:
    sec = root.section("localConfig")
    if sec is None:
        return LocalTrainingService()
    sec.check_keys(("gpuIndices", "maxTrialNumPerGpu", "useActiveGpu", *_STORAGE_KEYS))
    # kubesweep only: kubeflowConfig's storage keys, for local trials on shared storage.
    remote = any(sec.has(key) for key in _STORAGE_KEYS)
    return LocalTrainingService(
        use_active_gpu=sec.get_bool("useActiveGpu"),
        max_trial_number_per_gpu=sec.get_int("maxTrialNumPerGpu", low=1, high=99999) or 1,
        gpu_indices=gpu_indices(sec, "gpuIndices", allow_list=False),
        storage=_storage(sec) if remote else None,
    )


def _kubeflow(root: Section, trial: Section, base_dir: Path | None) -> KubeflowTrainingService:
    cfg = root.req_section(
        "kubeflowConfig", "e.g. kubeflowConfig: {operator: tf-operator, storage: nfs, nfs: ...}"
    )
    cfg.check_keys(_KUBEFLOW_KEYS)
    operator = cfg.req_str(
        "operator", "tf-operator or pytorch-operator", choices=("tf-operator", "pytorch-operator")
    )
    roles = {name: _role(trial, name, base_dir) for name in ("ps", "master", "worker")}
    check_operator_roles(trial, operator, roles, "kubeflowConfig.operator")
    return KubeflowTrainingService(
        operator=operator,
        api_version=cfg.get_str("apiVersion") or "v1",
        namespace=cfg.get_str("namespace") or "default",
        reuse_mode=cfg.get_bool("reuse"),
        storage=_storage(cfg),
        **roles,
    )


def _role(trial: Section, name: str, base_dir: Path | None) -> RoleSpec | None:
    sec = trial.section(name)
    if sec is None:
        return None
    sec.check_keys(_ROLE_KEYS)
    auth = sec.get_str("privateRegistryAuthPath")
    return RoleSpec(
        replicas=sec.req_int("replicas", "how many pods run this role", low=1),
        command=sec.req_str("command", "the shell command this role runs"),
        gpu_number=sec.req_int("gpuNum", "GPUs per pod, 0 for none", low=0, high=99999),
        cpu_number=sec.req_int("cpuNum", "CPUs per pod, e.g. 1", low=1, high=99999),
        memory_mb=sec.req_int("memoryMB", "memory per pod in MB, e.g. 8192", low=1),
        image=sec.req_str("image", "the Docker image the pods run"),
        private_registry_auth_path=None if auth is None else resolve_path(auth, base_dir),
    )


def _storage(cfg: Section) -> NfsStorage | AzureStorage:
    kind = cfg.get_str("storage", choices=("nfs", "azureStorage"))
    if kind is None:
        if cfg.has("azureStorage") or cfg.has("keyVault"):
            raise cfg.error(
                "storage",
                f"is not set but azureStorage is; please set {cfg.field('storage')}: azureStorage",
            )
        kind = "nfs"
    if kind == "nfs":
        for key in ("keyVault", "azureStorage", "uploadRetryCount"):
            cfg.forbid(key, "only applies to storage: azureStorage; remove it or change storage")
        nfs = cfg.req_section("nfs", "storage nfs needs nfs: {server: <host>, path: <export>}")
        nfs.check_keys(("server", "path"))
        return NfsStorage(
            server=nfs.req_str("server", "the NFS server's host name or IP"),
            path=nfs.req_str("path", "the exported path on the NFS server"),
        )
    cfg.forbid("nfs", "only applies to storage: nfs; remove it or set storage: nfs")
    vault = cfg.req_section("keyVault", "storage azureStorage needs keyVault: {vaultName, name}")
    vault.check_keys(("vaultName", "name"))
    account = cfg.req_section(
        "azureStorage", "storage azureStorage needs azureStorage: {accountName, azureShare}"
    )
    account.check_keys(("accountName", "azureShare"))
    letters = "letters, digits and '-' only"
    return AzureStorage(
        account_name=account.req_str(
            "accountName",
            "the storage account",
            pattern=_ACCOUNT_RE,
            pattern_hint=f"3-31 {letters}",
        ),
        share=account.req_str(
            "azureShare", "the file share", pattern=_SHARE_RE, pattern_hint=f"3-63 {letters}"
        ),
        key_vault_name=vault.req_str(
            "vaultName", "the Key Vault", pattern=_NAME_RE, pattern_hint=f"1-127 {letters}"
        ),
        key_vault_key=vault.req_str(
            "name",
            "the secret holding the account key",
            pattern=_NAME_RE,
            pattern_hint=f"1-127 {letters}",
        ),
        upload_retry_count=cfg.get_int("uploadRetryCount", low=1, high=99999) or 3,
    )
