"""``ExperimentSpec``: the one internal form NNI v1 and v2 configs normalise into.

Every service reads these field names; they are JSON round-trippable through
``model_dump(mode="json")`` and ``ExperimentSpec.model_validate``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AlgorithmSpec",
    "AzureStorage",
    "ExperimentSpec",
    "KubeflowTrainingService",
    "LocalTrainingService",
    "MountedStorage",
    "NfsStorage",
    "RoleSpec",
    "Storage",
    "TrainingService",
]

ROLE_NAMES: tuple[str, ...] = ("master", "chief", "worker", "ps", "evaluator")
"""Kubeflow replica roles, in the order used to pick the primary (metric-reporting) role."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlgorithmSpec(_Frozen):
    """A tuner or assessor: a built-in ``name`` or a custom ``class_name``.

    v1 custom algorithms keep ``class_file_name`` and the bare ``class_name``; v2 ones keep
    NNI v2's dotted ``module.Class`` in ``class_name``. Loading them is the tuner service's job.
    """

    name: str | None = None
    class_name: str | None = None
    class_file_name: str | None = None
    code_directory: str | None = None
    class_args: dict[str, Any] = Field(default_factory=dict)
    include_intermediate_results: bool = False
    code_archive: str | None = None
    """A custom algorithm's code directory as a base64 tar.gz, attached by the API at
    submission (`kubesweep.config.custom`): the tuner service cannot read the user's disk."""
    code_sha256: str | None = None

    @model_validator(mode="after")
    def _name_xor_class(self) -> AlgorithmSpec:
        if (self.name is None) == (self.class_name is None):
            raise ValueError("set exactly one of name (built-in) or class_name (custom)")
        return self


class RoleSpec(_Frozen):
    """One Kubeflow replica role (worker, ps, master, chief, evaluator)."""

    replicas: int = Field(ge=1)
    command: str
    gpu_number: int = Field(default=0, ge=0)
    cpu_number: float = Field(gt=0)
    memory_mb: int = Field(ge=1)
    image: str
    private_registry_auth_path: str | None = None


class NfsStorage(_Frozen):
    """An NFS export shared by the dispatcher and the trial pods."""

    type: Literal["nfs"] = "nfs"
    server: str
    path: str


class AzureStorage(_Frozen):
    """An Azure file share; the account key comes from Key Vault."""

    type: Literal["azureStorage"] = "azureStorage"
    account_name: str
    share: str
    key_vault_name: str
    key_vault_key: str
    upload_retry_count: int = Field(default=3, ge=1)


class MountedStorage(_Frozen):
    """kubesweep only: a volume already mounted at ``path`` in the dispatcher and the pods."""

    type: Literal["mounted"] = "mounted"
    path: str


Storage = Annotated[NfsStorage | AzureStorage | MountedStorage, Field(discriminator="type")]


class LocalTrainingService(_Frozen):
    """Trials run as processes on the dispatcher's machine."""

    platform: Literal["local"] = "local"
    use_active_gpu: bool = False
    max_trial_number_per_gpu: int = Field(default=1, ge=1)
    gpu_indices: list[int] | None = None
    storage: Storage | None = None
    """kubesweep only: keep code and outputs on this storage (None: the local storage root)."""


class KubeflowTrainingService(_Frozen):
    """Each trial is one TFJob or PyTorchJob.

    ``reuse_mode`` records what the user asked for (NNI's ``reuse`` / ``reuseMode``), but
    kubesweep ignores it: it always runs one Kubeflow job per trial and never keeps
    long-lived reusable environments.
    """

    platform: Literal["kubeflow"] = "kubeflow"
    operator: Literal["tf-operator", "pytorch-operator"]
    api_version: str = "v1"
    namespace: str = "default"
    reuse_mode: bool = False
    storage: Storage
    worker: RoleSpec | None = None
    ps: RoleSpec | None = None
    master: RoleSpec | None = None
    chief: RoleSpec | None = None
    evaluator: RoleSpec | None = None

    @property
    def roles(self) -> dict[str, RoleSpec]:
        """The configured roles by name, primary (metric-reporting) role first."""
        found = {name: getattr(self, name) for name in ROLE_NAMES}
        return {name: role for name, role in found.items() if role is not None}

    @property
    def primary_role(self) -> str:
        """The role whose replica 0 reports metrics: master, else chief, else worker."""
        return next(iter(self.roles))


TrainingService = Annotated[
    LocalTrainingService | KubeflowTrainingService, Field(discriminator="platform")
]


class ExperimentSpec(_Frozen):
    """A validated experiment, whichever NNI config format it came from."""

    source_format: Literal["v1", "v2"]
    name: str
    description: str = ""
    author: str = ""
    search_space: dict[str, Any]
    trial_command: str
    trial_code_directory: str
    trial_concurrency: int = Field(ge=1)
    trial_gpu_number: int = Field(default=0, ge=0)
    max_trial_number: int | None = Field(default=None, ge=1)
    max_experiment_duration: float | None = Field(default=None, gt=0)
    max_trial_duration: float | None = Field(default=None, gt=0)
    tuner: AlgorithmSpec
    assessor: AlgorithmSpec | None = None
    platform: Literal["local", "kubeflow"]
    training_service: TrainingService
    nni_manager_ip: str | None = None
    debug: bool = False
    log_level: str = "info"
    extension: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _platform_matches(self) -> ExperimentSpec:
        if self.training_service.platform != self.platform:
            raise ValueError(
                f"platform {self.platform!r} does not match training_service.platform "
                f"{self.training_service.platform!r}"
            )
        return self
