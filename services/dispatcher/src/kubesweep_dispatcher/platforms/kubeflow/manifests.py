"""One trial attempt as a TFJob or PyTorchJob manifest: pure functions, no API calls.

The shape (docs/kubeflow.md has the full picture and the reasons)::

    apiVersion: kubeflow.org/v1
    kind: TFJob | PyTorchJob
    metadata: {name: ks-<exp>-<trial>, namespace, labels, annotations: raw ids}
    spec:
      runPolicy: {cleanPodPolicy: Running, backoffLimit: 0, ttlSecondsAfterFinished?}
      tfReplicaSpecs | pytorchReplicaSpecs:
        <Type>: {replicas, restartPolicy: Never, template: {metadata: {labels}, spec: pod}}

Every pod runs one container, ``tensorflow`` or ``pytorch`` (the operator finds its
container by that name), executing the staged keeper with the role's command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubesweep.config.spec import (
    AzureStorage,
    ExperimentSpec,
    KubeflowTrainingService,
    NfsStorage,
    RoleSpec,
    Storage,
)
from kubesweep.errors import ConfigError
from kubesweep.records import TrialRecord
from kubesweep_dispatcher.platforms.kubeflow import keeper_command as keeper
from kubesweep_dispatcher.platforms.kubeflow import names
from kubesweep_dispatcher.platforms.kubeflow.overrides import (
    KubeflowOverrides,
    PodOverrides,
    parse_overrides,
)

__all__ = [
    "EXPERIMENT_ID_ANNOTATION",
    "JOB_KINDS",
    "REPLICA_TYPES",
    "STORAGE_VOLUME",
    "TRIAL_ID_ANNOTATION",
    "build_job",
    "cpu_quantity",
    "job_namespace",
    "storage_volume",
]

STORAGE_VOLUME = "kubesweep-storage"
SHM_VOLUME = "dshm"
# Raw ids, for mapping a job back to its trial when a label value had to be hashed.
EXPERIMENT_ID_ANNOTATION = "kubesweep.io/experiment-id"
TRIAL_ID_ANNOTATION = "kubesweep.io/trial-id"

# operator -> (kind, replica-specs key, container name)
JOB_KINDS: dict[str, tuple[str, str, str]] = {
    "tf-operator": ("TFJob", "tfReplicaSpecs", "tensorflow"),
    "pytorch-operator": ("PyTorchJob", "pytorchReplicaSpecs", "pytorch"),
}
# kubesweep role -> the operator's replica type (canonical casing: "PS", not NNI's "Ps")
REPLICA_TYPES = {
    "master": "Master",
    "chief": "Chief",
    "worker": "Worker",
    "ps": "PS",
    "evaluator": "Evaluator",
}
_ALLOWED_ROLES = {
    "tf-operator": ("chief", "worker", "ps", "evaluator"),
    "pytorch-operator": ("master", "worker"),
}
_REQUIRED_ROLE = {"tf-operator": "worker", "pytorch-operator": "master"}


def cpu_quantity(cpus: float) -> str:
    """``2`` for whole CPUs, else millicores (``500m``): no float noise in a quantity."""
    if float(cpus).is_integer():
        return str(int(cpus))
    return f"{max(1, round(cpus * 1000))}m"


def storage_volume(
    storage: Storage, experiment_id: str, *, claim_name: str | None = None
) -> dict[str, Any]:
    """The volume source pods mount the share with: ``nfs``, ``azureFile`` or a PVC.

    Mounted storage has no in-pod counterpart of its own; the cluster must offer it as a
    PersistentVolumeClaim (``claim_name``).
    """
    if isinstance(storage, NfsStorage):
        return {"nfs": {"server": storage.server, "path": storage.path}}
    if isinstance(storage, AzureStorage):
        # NNI writes `readonly` here, a key Kubernetes silently drops; it is `readOnly`.
        secret = names.storage_secret_name(experiment_id)
        return {"azureFile": {"secretName": secret, "shareName": storage.share, "readOnly": False}}
    if claim_name is None:
        raise ConfigError(
            "mounted storage needs a PersistentVolumeClaim for the trial pods",
            field="trainingService.storage",
        )
    return {"persistentVolumeClaim": {"claimName": claim_name}}


def job_namespace(spec: ExperimentSpec, overrides: KubeflowOverrides | None = None) -> str:
    """Where the experiment's jobs go: ``kubesweep.job.namespace``, else the training
    service's ``namespace`` (NNI's ``kubeflowConfig.namespace``, default ``default``)."""
    found = parse_overrides(spec.extension) if overrides is None else overrides
    service = spec.training_service
    fallback = service.namespace if isinstance(service, KubeflowTrainingService) else "default"
    return found.job.namespace or fallback


def _check_roles(service: KubeflowTrainingService) -> None:
    # The config loaders enforce these already; a spec built in code must not bypass them,
    # or the operator's webhook would refuse the job only at launch time.
    allowed, required = _ALLOWED_ROLES[service.operator], _REQUIRED_ROLE[service.operator]
    for role, found in service.roles.items():
        if role not in allowed:
            raise ConfigError(f"{service.operator} has no {role} role", field=role)
        if role in ("master", "chief") and found.replicas != 1:
            raise ConfigError(f"a {role} runs exactly one replica", field=f"{role}.replicas")
    if required not in service.roles:
        raise ConfigError(f"is required for {service.operator}", field=required)


def _resources(role: RoleSpec) -> dict[str, Any]:
    amounts = {"cpu": cpu_quantity(role.cpu_number), "memory": f"{role.memory_mb}Mi"}
    if role.gpu_number > 0:
        amounts["nvidia.com/gpu"] = str(role.gpu_number)
    # requests == limits (NNI does the same): Guaranteed QoS, so a trial is neither
    # throttled by noisy neighbours nor first in line for eviction.
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pod_spec(
    container: dict[str, Any],
    volume: Mapping[str, Any],
    pod: PodOverrides,
    pull_secrets: list[str],
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": STORAGE_VOLUME, **volume}]
    mounts = [{"name": STORAGE_VOLUME, "mountPath": keeper.MOUNT_PATH}]
    if pod.shm_size is not None:
        # Docker's 64 MiB /dev/shm starves PyTorch DataLoader workers; a memory-backed
        # emptyDir counts against the pod's memory limit, sizeLimit caps it.
        shm = {"medium": "Memory", "sizeLimit": pod.shm_size}
        volumes.append({"name": SHM_VOLUME, "emptyDir": shm})
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})  # noqa: S108
    container["volumeMounts"] = mounts
    if pod.env:
        ours = {var["name"]: i for i, var in enumerate(container["env"])}
        for var in pod.env:
            entry = keeper.env_var(var.name, var.value)
            if var.name in ours:
                container["env"][ours[var.name]] = entry
            else:
                container["env"].append(entry)
    # restartPolicy Never: kubesweep retries a failed trial as a new attempt (new job, new
    # token, fresh output folder), so the operator must not restart containers in place.
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": volumes}
    optional = {
        "nodeSelector": pod.node_selector,
        "tolerations": [t.to_k8s() for t in pod.tolerations] if pod.tolerations else None,
        "affinity": pod.affinity.to_k8s() if pod.affinity else None,
        "serviceAccountName": pod.service_account_name,
        "priorityClassName": pod.priority_class_name,
        "imagePullSecrets": [{"name": name} for name in pull_secrets] or None,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    return spec


def _validated_volume(volume: Mapping[str, Any]) -> Mapping[str, Any]:
    if len(volume) != 1 or "name" in volume:
        raise ValueError(
            "storage_volume must be one volume source without a name, e.g. "
            f"{{'nfs': {{'server': ..., 'path': ...}}}}; got keys {sorted(volume)}"
        )
    return volume


def build_job(
    spec: ExperimentSpec,
    trial: TrialRecord,
    *,
    attempt: int,
    namespace: str,
    storage_volume: Mapping[str, Any],
    collector_url: str,
    keeper_env: Mapping[str, str] | None = None,
    overrides: KubeflowOverrides | None = None,
    api_version: str = "v1",
    image_pull_secret: str | None = None,
) -> dict[str, Any]:
    """The TFJob or PyTorchJob for one attempt of ``trial``, as a plain JSON-ready dict.

    ``storage_volume`` is a ready volume source (see :func:`storage_volume`); ``keeper_env``
    adds plain variables for the keeper (never the token: it comes from the Secret
    ``names.token_secret_name``); ``overrides`` defaults to ``spec.extension``'s
    ``kubesweep:`` block; ``image_pull_secret`` is added to every role's pull secrets, after
    the overrides' and the role's ``privateRegistryAuthPath`` Secret.
    """
    service = spec.training_service
    if not isinstance(service, KubeflowTrainingService):
        raise ConfigError("is not kubeflow", field="trainingService.platform")
    _check_roles(service)
    volume = _validated_volume(storage_volume)
    found = parse_overrides(spec.extension) if overrides is None else overrides
    kind, specs_key, container_name = JOB_KINDS[service.operator]
    exp_id, trial_id = trial.experiment_id, trial.id
    job_labels = names.labels(exp_id, trial_id, attempt)
    token_secret = names.token_secret_name(exp_id, trial_id, attempt)
    replica_specs: dict[str, Any] = {}
    for role, role_spec in service.roles.items():
        replica_type = REPLICA_TYPES[role]
        primary = keeper.primary_of(service, role)
        container = {
            "name": container_name,
            "image": role_spec.image,
            "command": keeper.keeper_command(primary),
            "env": keeper.keeper_env(
                experiment_id=exp_id,
                trial_id=trial_id,
                seq=trial.seq,
                attempt=attempt,
                role=role,
                replica_type=replica_type,
                role_spec=role_spec,
                primary=primary,
                collector_url=collector_url,
                token_secret=token_secret,
                extra=keeper_env,
            ),
            "resources": _resources(role_spec),
        }
        pod = found.for_role(role)
        pulls = list(pod.image_pull_secrets or [])
        if role_spec.private_registry_auth_path:
            pulls.append(names.registry_secret_name(exp_id, role))
        if image_pull_secret:
            pulls.append(image_pull_secret)
        replica_specs[replica_type] = {
            "replicas": role_spec.replicas,
            "restartPolicy": "Never",
            "template": {
                "metadata": {"labels": dict(job_labels)},
                "spec": _pod_spec(container, volume, pod, list(dict.fromkeys(pulls))),
            },
        }
    run_policy: dict[str, Any] = {
        "cleanPodPolicy": found.job.clean_pod_policy,
        # Retries are kubesweep's (a new attempt), never the operator's.
        "backoffLimit": 0,
    }
    if found.job.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = found.job.ttl_seconds_after_finished
    manifest = {
        "apiVersion": f"kubeflow.org/{api_version}",
        "kind": kind,
        "metadata": {
            "name": names.job_name(exp_id, trial_id, attempt),
            "namespace": namespace,
            "labels": job_labels,
            "annotations": {EXPERIMENT_ID_ANNOTATION: exp_id, TRIAL_ID_ANNOTATION: trial_id},
        },
        "spec": {"runPolicy": run_policy, specs_key: replica_specs},
    }
    # Replicas share the volume, labels and override objects. A JSON round trip unshares them
    # (deepcopy would keep the sharing) so editing one replica cannot change another or the
    # overrides, YAML dumps carry no &anchors, and anything not JSON-ready fails here.
    result: dict[str, Any] = json.loads(json.dumps(manifest))
    return result
