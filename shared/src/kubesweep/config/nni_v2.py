"""NNI v2 YAML/JSON (``nni/experiment/config``) into ExperimentSpec fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubesweep.config.extension import read_extension
from kubesweep.config.reader import Section
from kubesweep.config.spec import (
    ROLE_NAMES,
    AlgorithmSpec,
    AzureStorage,
    KubeflowTrainingService,
    LocalTrainingService,
    MountedStorage,
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
    memory_mb,
    refuse_annotation,
    resolve_path,
    v2_duration,
)

__all__ = ["parse_v2"]

_TOP = (
    "experimentName",
    "searchSpaceFile",
    "searchSpace",
    "trialCommand",
    "trialCodeDirectory",
    "trialConcurrency",
    "trialGpuNumber",
    "maxExperimentDuration",
    "maxTrialDuration",
    "maxTrialNumber",
    "nniManagerIp",
    "useAnnotation",
    "debug",
    "logLevel",
    "experimentWorkingDirectory",
    "tunerGpuIndices",
    "tuner",
    "assessor",
    "advisor",
    "trainingService",
    "sharedStorage",
    "kubesweep",
)
_SHORTCUTS = (
    "platform",
    "trialCommand",
    "trialCodeDirectory",
    "trialGpuNumber",
    "nniManagerIp",
    "debug",
)
_LOCAL_KEYS = (
    *_SHORTCUTS,
    "useActiveGpu",
    "maxTrialNumberPerGpu",
    "gpuIndices",
    "reuseMode",
    "storage",
)
_KUBEFLOW_KEYS = (
    *_SHORTCUTS,
    "operator",
    "apiVersion",
    "storage",
    "reuseMode",
    "namespace",
    *ROLE_NAMES,
)
_ROLE_KEYS = (
    "replicas",
    "command",
    "gpuNumber",
    "cpuNumber",
    "memorySize",
    "dockerImage",
    "codeDirectory",
    "privateRegistryAuthPath",
)
_STORAGE_FIELDS = {
    "nfs": ("server", "path"),
    "azureStorage": ("azureAccount", "azureShare", "keyVaultName", "keyVaultKey"),
    "mounted": ("path",),
}
_NAME_RE, _ACCOUNT_RE, _SHARE_RE = (
    r"[0-9a-zA-Z-]{1,127}",
    r"[0-9a-zA-Z-]{3,31}",
    r"[0-9a-zA-Z-]{3,63}",
)
DEFAULT_IMAGE = "msranni/nni:latest"


def parse_v2(root: Section, base_dir: Path | None) -> Draft:
    """Validate an NNI v2 config and map it onto ExperimentSpec field names."""
    if isinstance(root.data.get("trainingService"), list):
        raise root.error(
            "trainingService",
            "a list of training services (hybrid mode) is not supported by kubesweep; give one "
            "mapping with platform: local or platform: kubeflow",
        )
    ts = root.req_section("trainingService", "e.g. trainingService: {platform: local}")
    platform = check_platform(ts, "platform")
    root.check_keys(_TOP)
    root.forbid(
        "sharedStorage",
        "is not supported by kubesweep yet; remove it (kubeflow trials share files through "
        "trainingService.storage)",
    )
    refuse_annotation(root)
    if root.has("searchSpaceFile") and root.has("searchSpace"):
        raise root.error("searchSpace", "cannot be combined with searchSpaceFile; keep only one")
    root.get_str("experimentWorkingDirectory")
    gpu_indices(root, "tunerGpuIndices", allow_list=True)  # validated; tuners run on CPU here
    ts.check_keys(_LOCAL_KEYS if platform == "local" else _KUBEFLOW_KEYS)
    debug = ts.get_bool("debug", root.get_bool("debug"))
    gpus = ts.get_int("trialGpuNumber", low=0)
    if gpus is None:
        gpus = root.get_int("trialGpuNumber", low=0) or 0
    command = ts.get_str("trialCommand") or root.get_str("trialCommand")
    code_dir = ts.get_str("trialCodeDirectory") or root.get_str("trialCodeDirectory")
    code_dir = None if code_dir is None else resolve_path(code_dir, base_dir)
    service: LocalTrainingService | KubeflowTrainingService
    if platform == "local":
        if command is None:
            raise root.error("trialCommand", "is required; the shell command that runs one trial")
        service = LocalTrainingService(
            use_active_gpu=ts.get_bool("useActiveGpu"),
            max_trial_number_per_gpu=ts.get_int("maxTrialNumberPerGpu", low=1) or 1,
            gpu_indices=gpu_indices(ts, "gpuIndices", allow_list=True),
            storage=_storage(ts) if ts.has("storage") else None,
        )
        ts.get_bool("reuseMode")
    else:
        service, code_dir = _kubeflow(ts, base_dir, code_dir)
        command = command or service.roles[service.primary_role].command
    tuner, assessor = _algorithms(root, base_dir)
    fields: dict[str, Any] = {
        "source_format": "v2",
        "name": root.get_str("experimentName") or "experiment",
        "trial_command": command,
        "trial_code_directory": code_dir or resolve_path(".", base_dir),
        "trial_concurrency": root.req_int(
            "trialConcurrency", "how many trials run at once, e.g. 4", low=1
        ),
        "trial_gpu_number": gpus,
        "max_trial_number": root.get_int("maxTrialNumber", low=1),
        "max_experiment_duration": v2_duration(root, "maxExperimentDuration"),
        "max_trial_duration": v2_duration(root, "maxTrialDuration"),
        "tuner": tuner,
        "assessor": assessor,
        "platform": platform,
        "training_service": service,
        "nni_manager_ip": ts.get_str("nniManagerIp") or root.get_str("nniManagerIp"),
        "debug": debug,
        "log_level": root.get_str("logLevel", choices=LOG_LEVELS) or ("debug" if debug else "info"),
        "extension": read_extension(root, tuner.class_args),
    }
    return Draft(
        fields=fields,
        search_space_key="searchSpaceFile",
        search_space_file=root.get_str("searchSpaceFile"),
        search_space_line=root.line_of("searchSpaceFile"),
        inline_search_space=root.section("searchSpace") if "searchSpace" in root.data else None,
    )


def _algorithms(root: Section, base_dir: Path | None) -> tuple[AlgorithmSpec, AlgorithmSpec | None]:
    advisor = _algorithm(root, "advisor", base_dir)
    if advisor is not None:
        for key in ("tuner", "assessor"):
            root.forbid(key, "cannot be combined with advisor (deprecated); move it to tuner")
        return advisor, None
    tuner = _algorithm(root, "tuner", base_dir)
    if tuner is None:
        raise root.error("tuner", "is required; e.g. tuner: {name: TPE}")
    return tuner, _algorithm(root, "assessor", base_dir)


def _algorithm(root: Section, key: str, base_dir: Path | None) -> AlgorithmSpec | None:
    sec = root.section(key)
    if sec is None:
        return None
    extra = ("includeIntermediateResults",) if key == "tuner" else ()
    sec.check_keys(("name", "className", "codeDirectory", "classArgs", *extra))
    common: dict[str, Any] = {
        "class_args": class_args(sec),
        "include_intermediate_results": sec.get_bool("includeIntermediateResults"),
    }
    if sec.has("name"):
        for other in ("className", "codeDirectory"):
            sec.forbid(other, "cannot be combined with name; use a built-in name or a className")
        return AlgorithmSpec(name=sec.req_str("name", ""), **common)
    class_name = sec.req_str("className", "set name (built-in) or className (custom), e.g. TPE")
    return AlgorithmSpec(
        class_name=class_name,
        code_directory=resolve_path(sec.get_str("codeDirectory") or ".", base_dir),
        **common,
    )


def _kubeflow(
    ts: Section, base_dir: Path | None, code_dir: str | None
) -> tuple[KubeflowTrainingService, str | None]:
    operator = ts.req_str(
        "operator", "tf-operator or pytorch-operator", choices=("tf-operator", "pytorch-operator")
    )
    roles: dict[str, RoleSpec | None] = {}
    for name in ROLE_NAMES:
        roles[name], role_dir = _role(ts, name, base_dir)
        if role_dir is None:
            continue
        if code_dir is None:
            code_dir = role_dir
        elif role_dir != code_dir:
            role_sec = ts.section(name)
            assert role_sec is not None
            raise role_sec.error(
                "codeDirectory",
                f"kubesweep stages one code directory per experiment, and {role_dir} differs "
                f"from {code_dir}; make them equal or drop the role's codeDirectory",
            )
    check_operator_roles(ts, operator, roles, "trainingService.operator")
    service = KubeflowTrainingService(
        operator=operator,
        api_version=ts.get_str("apiVersion") or "v1",
        namespace=ts.get_str("namespace") or "default",
        reuse_mode=ts.get_bool("reuseMode"),
        storage=_storage(ts),
        **roles,
    )
    return service, code_dir


def _role(ts: Section, name: str, base_dir: Path | None) -> tuple[RoleSpec | None, str | None]:
    sec = ts.section(name)
    if sec is None:
        return None, None
    sec.check_keys(_ROLE_KEYS)
    cpus = sec.get_positive_number("cpuNumber")
    if cpus is None:
        raise sec.error("cpuNumber", "is required; CPUs per pod, e.g. 1 or 0.5")
    auth = sec.get_str("privateRegistryAuthPath")
    code_dir = sec.get_str("codeDirectory")
    role = RoleSpec(
        replicas=sec.req_int("replicas", "how many pods run this role", low=1),
        command=sec.req_str("command", "the shell command this role runs"),
        gpu_number=sec.get_int("gpuNumber", low=0) or 0,
        cpu_number=cpus,
        memory_mb=memory_mb(sec, "memorySize"),
        image=sec.get_str("dockerImage") or DEFAULT_IMAGE,
        private_registry_auth_path=None if auth is None else resolve_path(auth, base_dir),
    )
    return role, None if code_dir is None else resolve_path(code_dir, base_dir)


def _storage(ts: Section) -> NfsStorage | AzureStorage | MountedStorage:
    sec = ts.req_section("storage", "e.g. storage: {storageType: nfs, server: ..., path: ...}")
    sec.check_keys(
        (
            "storageType",
            "server",
            "path",
            "azureAccount",
            "azureShare",
            "keyVaultName",
            "keyVaultKey",
        )
    )
    kind = sec.req_str(
        "storageType", "nfs, azureStorage or mounted", choices=tuple(_STORAGE_FIELDS)
    )
    for key in sec.data:
        if key != "storageType" and key not in _STORAGE_FIELDS[kind]:
            raise sec.error(key, f"does not apply to storageType: {kind}; remove it")
    hint = f"storageType {kind} needs {', '.join(_STORAGE_FIELDS[kind])}"
    if kind == "nfs":
        return NfsStorage(server=sec.req_str("server", hint), path=sec.req_str("path", hint))
    if kind == "mounted":
        path = sec.req_str("path", hint)
        if not path.startswith("/"):
            raise sec.error("path", f"must be an absolute path inside the pods, got {path!r}")
        return MountedStorage(path=path)
    letters = "letters, digits and '-' only"
    return AzureStorage(
        account_name=sec.req_str(
            "azureAccount", hint, pattern=_ACCOUNT_RE, pattern_hint=f"3-31 {letters}"
        ),
        share=sec.req_str("azureShare", hint, pattern=_SHARE_RE, pattern_hint=f"3-63 {letters}"),
        key_vault_name=sec.req_str(
            "keyVaultName", hint, pattern=_NAME_RE, pattern_hint=f"1-127 {letters}"
        ),
        key_vault_key=sec.req_str(
            "keyVaultKey", hint, pattern=_NAME_RE, pattern_hint=f"1-127 {letters}"
        ),
    )
