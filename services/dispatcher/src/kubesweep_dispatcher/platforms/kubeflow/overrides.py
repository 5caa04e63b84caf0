"""The ``kubesweep:`` block's Kubeflow settings: pod-template overrides and job policy.

NNI sets none of these (nni-reference.md §1.6, §6 #10); users asked for them (peers.md §2
#11). Shape, all keys optional (camelCase as in Kubernetes; snake_case also accepted)::

    kubesweep:
      pod:                         # every replica's pod template
        nodeSelector: {gpu: a100}
        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
        affinity: {nodeAffinity: {...}}          # Kubernetes' own Affinity object
        env: [{name: HF_HOME, value: /cache}]
        serviceAccountName: trainer
        imagePullSecrets: [regcred]              # or [{name: regcred}]
        shmSize: 2Gi                             # /dev/shm as a memory-backed emptyDir
        priorityClassName: batch-low
      roles:                       # per replica role, over `pod`
        ps: {nodeSelector: {pool: cpu}}
      job:
        namespace: team-a          # wins over kubeflowConfig.namespace
        pendingTimeout: 600        # seconds a pod may stay Pending before the trial fails
        cleanPodPolicy: Running    # All | Running | None
        ttlSecondsAfterFinished: 86400

Other keys of the ``kubesweep:`` block belong to other components and are ignored here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from kubesweep.config.spec import ROLE_NAMES
from kubesweep.errors import ConfigError
from kubesweep_dispatcher.platforms.kubeflow.names import (
    is_dns1123_subdomain,
    is_label_value,
)

__all__ = [
    "Affinity",
    "EnvVar",
    "JobOverrides",
    "KubeflowOverrides",
    "PodOverrides",
    "Toleration",
    "parse_overrides",
]

_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_QUANTITY = re.compile(r"(\d+(\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
# The keeper and the trial contract own these; a user value would break the trial.
_RESERVED_ENV = re.compile(r"(KUBESWEEP_|NNI_).*|PYTHONPATH")


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    def to_k8s(self) -> dict[str, Any]:
        """The Kubernetes form: camelCase keys, unset fields left out (never ``null``)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _check_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if (prefix and not is_dns1123_subdomain(prefix)) or not _QUALIFIED_NAME.fullmatch(name):
        raise ValueError(f"{key!r} is not a valid label key (e.g. 'pool' or 'example.com/pool')")
    return key


class Toleration(_Model):
    """One Kubernetes toleration."""

    key: str | None = None
    # validate_default: a toleration without key and operator must be refused too.
    operator: Literal["Exists", "Equal"] | None = Field(default=None, validate_default=True)
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, key: str | None) -> str | None:
        return None if key is None else _check_label_key(key)

    @field_validator("operator")
    @classmethod
    def _operator(cls, operator: str | None, info: ValidationInfo) -> str | None:
        if not info.data.get("key") and operator != "Exists":
            raise ValueError("without a key the operator must be Exists (tolerate every taint)")
        return operator

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("operator") == "Exists":
            raise ValueError("must be empty when the operator is Exists")
        if value is not None and not is_label_value(value):
            raise ValueError(f"{value!r} is not a valid taint value")
        return value

    @field_validator("toleration_seconds")
    @classmethod
    def _seconds(cls, seconds: int | None, info: ValidationInfo) -> int | None:
        if seconds is not None and info.data.get("effect") != "NoExecute":
            raise ValueError("only applies to effect NoExecute")
        return seconds


class Affinity(_Model):
    """Kubernetes' Affinity; the inner objects pass through as given (the apiserver checks them)."""

    node_affinity: dict[str, Any] | None = None
    pod_affinity: dict[str, Any] | None = None
    pod_anti_affinity: dict[str, Any] | None = None


class EnvVar(_Model):
    """A plain ``{name, value}`` variable for the keeper and the trial command."""

    name: str
    value: str

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        if _RESERVED_ENV.fullmatch(name):
            raise ValueError(f"{name} is set by kubesweep and cannot be overridden")
        return name

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any) -> Any:
        # YAML reads `value: 4` as a number; Kubernetes wants a string. Booleans are
        # ambiguous (`yes` → true), so those must be quoted.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value


class PodOverrides(_Model):
    """Fields merged into every replica's pod template (or one role's)."""

    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    affinity: Affinity | None = None
    env: list[EnvVar] | None = None
    service_account_name: str | None = None
    image_pull_secrets: list[str] | None = None
    shm_size: str | None = None
    priority_class_name: str | None = None

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, found: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (found or {}).items():
            _check_label_key(key)
            if not is_label_value(value):
                raise ValueError(f"{value!r} (for {key!r}) is not a valid label value")
        return found

    @field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[EnvVar] | None) -> list[EnvVar] | None:
        names = [var.name for var in env or []]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sets {', '.join(duplicates)} more than once")
        return env

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _pull_secret_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v["name"] if isinstance(v, dict) and set(v) == {"name"} else v for v in value]
        return value

    @field_validator("service_account_name", "priority_class_name")
    @classmethod
    def _object_name(cls, name: str | None) -> str | None:
        if name is not None and not is_dns1123_subdomain(name):
            raise ValueError(f"{name!r} is not a valid object name (lowercase, digits, '-', '.')")
        return name

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, names: list[str] | None) -> list[str] | None:
        for name in names or []:
            cls._object_name(name)
        return names

    @field_validator("shm_size", mode="before")
    @classmethod
    def _shm_size(cls, size: Any) -> Any:
        if isinstance(size, int | float) and not isinstance(size, bool):
            raise ValueError(f"give a quantity with a unit, e.g. '{size}Mi' or '2Gi'")
        found = _QUANTITY.fullmatch(size) if isinstance(size, str) else None
        if isinstance(size, str) and (found is None or float(found.group(1)) <= 0):
            raise ValueError(f"{size!r} is not a positive quantity such as 512Mi or 2Gi")
        return size

    def merged(self, other: PodOverrides) -> PodOverrides:
        """``other`` over ``self``: lists and scalars replace; nodeSelector and env merge by key."""
        data = self.model_dump(exclude_none=True)
        for field, value in other.model_dump(exclude_none=True).items():
            if field == "node_selector":
                data[field] = {**data.get(field, {}), **value}
            elif field == "env":
                mine = {var["name"]: var for var in data.get(field, [])}
                data[field] = list({**mine, **{var["name"]: var for var in value}}.values())
            else:
                data[field] = value
        return PodOverrides.model_validate(data)


class JobOverrides(_Model):
    """Job-level settings: where the job runs and what happens to it afterwards."""

    namespace: str | None = None
    pending_timeout: float | None = Field(default=None, gt=0)
    # Attempts per trial when the infrastructure ends one (eviction, image pull, no node);
    # each is a new job. A failure of the trial's own command is never retried.
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    # Running: when the trial ends, still-running pods (TF parameter servers never exit on
    # their own, evaluators) are deleted so they free their GPUs, while finished pods stay
    # for their exit reason and `kubectl logs` until the job itself is deleted.
    clean_pod_policy: Literal["All", "Running", "None"] = "Running"
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str | None) -> str | None:
        if namespace is not None and (
            len(namespace) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace)
        ):
            raise ValueError(f"{namespace!r} is not a valid namespace name")
        return namespace


class KubeflowOverrides(_Model):
    """Everything the Kubeflow platform reads from the ``kubesweep:`` block."""

    pod: PodOverrides = PodOverrides()
    roles: dict[str, PodOverrides] = {}
    job: JobOverrides = JobOverrides()

    @field_validator("roles")
    @classmethod
    def _role_names(cls, roles: dict[str, PodOverrides]) -> dict[str, PodOverrides]:
        for name in roles:
            if name not in ROLE_NAMES:
                close = difflib.get_close_matches(name, ROLE_NAMES, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use {', '.join(ROLE_NAMES)}"
                raise ValueError(f"unknown role {name!r}; {hint}")
        return roles

    def for_role(self, role: str) -> PodOverrides:
        """The pod overrides for ``role`` (``worker``, ``ps``, ...): ``roles.<role>`` on ``pod``."""
        specific = self.roles.get(role)
        return self.pod if specific is None else self.pod.merged(specific)


_SECTIONS = tuple(KubeflowOverrides.model_fields)


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for model in (Toleration, Affinity, EnvVar, PodOverrides, JobOverrides, KubeflowOverrides):
        words.update(field.alias or name for name, field in model.model_fields.items())
    return sorted(words)


def _path(loc: tuple[str | int, ...]) -> str:
    out = "kubesweep"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}"
    return out


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, _vocabulary(), n=1, cutoff=0.6)
        return "unknown key; " + (f"did you mean {close[0]!r}?" if close else "remove it")
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_overrides(extension: Mapping[str, Any]) -> KubeflowOverrides:
    """Read ``pod``, ``roles`` and ``job`` from the ``kubesweep:`` block (``spec.extension``).

    Raises ``ConfigError`` naming the first bad field, e.g.
    ``kubesweep.pod.tolerations[0].effect``, and counting any further ones.
    """
    data = {key: extension[key] for key in _SECTIONS if extension.get(key) is not None}
    try:
        return KubeflowOverrides.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        message = _message(first)
        if len(errors) > 1:
            rest = "; ".join(f"{_path(e['loc'])}: {_message(e)}" for e in errors[1:4])
            message += f" (and {len(errors) - 1} more: {rest})"
        raise ConfigError(message, field=_path(first["loc"])) from exc
