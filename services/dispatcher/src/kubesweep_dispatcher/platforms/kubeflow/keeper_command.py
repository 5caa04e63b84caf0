"""The keeper container's command and environment (the trial contract, ARCHITECTURE §4).

Every replica runs the staged keeper from shared storage (``python3 -m
kubesweep_trial.keeper`` with the experiment's runtime folder on ``PYTHONPATH``), so the
image needs nothing but ``python3``. What differs between replicas of one pod template —
the replica index, hence the output folder and, for plain TFJob workers, which one is
primary — comes from the pod's own labels through the downward API, because one template
serves every replica of a role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesweep.config.spec import KubeflowTrainingService, RoleSpec
from kubesweep.trial import protocol
from kubesweep_dispatcher import layout

__all__ = [
    "ENV_REPLICA_INDEX",
    "ENV_REPLICA_TYPE",
    "KEEPER_COMMAND",
    "MOUNT_PATH",
    "PRIMARY_BOOTSTRAP",
    "REPLICA_INDEX_LABEL",
    "TOKEN_KEY",
    "escape",
    "keeper_command",
    "keeper_env",
    "primary_of",
]

# Where every replica mounts the shared storage. Fixed (like NNI's /tmp/mount) so staged
# paths are the same in every pod; kubesweep-specific so it cannot shadow an image's /tmp.
MOUNT_PATH = "/kubesweep-storage"
# Set by the training operator on every pod it creates (v1.9.4 `ReplicaIndexLabel`).
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
ENV_REPLICA_INDEX = "KUBESWEEP_REPLICA_INDEX"
ENV_REPLICA_TYPE = "KUBESWEEP_REPLICA_TYPE"
# The key of the per-attempt token Secret (see names.token_secret_name).
TOKEN_KEY = "token"  # noqa: S105 - a key name, not a secret

KEEPER_COMMAND = ("python3", "-m", f"{protocol.RUNTIME_PACKAGE}.keeper")
# For the one case the template cannot know statically — a TFJob without Chief whose Worker
# role has several replicas, where only Worker 0 is primary (the operator's IsMasterRole) —
# the keeper is started through this bootstrap, which derives KUBESWEEP_PRIMARY from the
# replica index. Python 3.8-compatible and free of "$(" (Kubernetes expands that in commands).
PRIMARY_BOOTSTRAP = (
    "import os, sys\n"
    f"index = os.environ.get({ENV_REPLICA_INDEX!r}, '')\n"
    f"os.environ[{protocol.ENV_PRIMARY!r}] = '1' if index == '0' else '0'\n"
    f"from {protocol.RUNTIME_PACKAGE}.keeper import main\n"
    "sys.exit(main([]))\n"
)


def env_var(name: str, value: str) -> dict[str, Any]:
    """One ``env`` entry; an empty value is left out, which Kubernetes reads as "".

    The API server's Go types drop ``value: ""`` (``omitempty``) everywhere, and a CRD's
    schema check (kube-apiserver 1.20, the training-operator CRDs) even rejects it as
    ``null`` with HTTP 422, so ``CUDA_VISIBLE_DEVICES=""`` must be written as a bare name.
    """
    return {"name": name, "value": value} if value else {"name": name}


def escape(value: str) -> str:
    """Protect a literal env value from Kubernetes' ``$(VAR)`` expansion (``$$`` → ``$``)."""
    return value.replace("$", "$$")


def primary_of(service: KubeflowTrainingService, role: str) -> bool | None:
    """Whether ``role``'s replicas are primary: True, False, or None for "replica 0 only".

    Mirrors the operator: PyTorchJob Master; TFJob Chief (or Master) when present, else
    Worker 0. Only the primary replica forwards metrics (ARCHITECTURE §4).
    """
    if service.operator == "pytorch-operator":
        return role == "master"
    if service.chief is not None or service.master is not None:
        return role in ("chief", "master")
    if role != "worker":
        return False
    assert service.worker is not None
    return True if service.worker.replicas == 1 else None


def keeper_command(primary: bool | None) -> list[str]:
    """The container command: the keeper, via the bootstrap when primacy is per index."""
    if primary is None:
        return ["python3", "-c", PRIMARY_BOOTSTRAP]
    return list(KEEPER_COMMAND)


def keeper_env(
    *,
    experiment_id: str,
    trial_id: str,
    seq: int,
    attempt: int,
    role: str,
    replica_type: str,
    role_spec: RoleSpec,
    primary: bool | None,
    collector_url: str,
    token_secret: str,
    extra: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The container's ``env`` list, in dependency order (``$(VAR)`` needs VAR earlier).

    The token is a ``secretKeyRef``, never a value: manifests are logged, stored in etcd
    unencrypted and readable by anyone who can ``get tfjobs``.
    """
    mount = MOUNT_PATH
    sys_dir = f"{mount}/{layout.trial(experiment_id, trial_id)}"
    # layout.output(exp, trial, role, index, attempt=...), the index filled in by Kubernetes.
    output = (
        f"{mount}/{layout.attempt_folder(experiment_id, trial_id, attempt)}"
        f"/output/{role}-$({ENV_REPLICA_INDEX})"
    )
    plain = {
        "PYTHONPATH": f"{mount}/{layout.runtime(experiment_id)}",
        protocol.ENV_RUNTIME_DIR: f"{mount}/{layout.runtime(experiment_id)}",
        "PYTHONUNBUFFERED": "1",
        protocol.ENV_PLATFORM: "kubeflow",
        protocol.ENV_EXPERIMENT_ID: experiment_id,
        protocol.ENV_TRIAL_ID: trial_id,
        protocol.ENV_TRIAL_SEQ: str(seq),
        protocol.ENV_TRIAL_ATTEMPT: str(attempt),
        protocol.ENV_COLLECTOR_URL: collector_url,
        protocol.ENV_TRIAL_COMMAND: role_spec.command,
        protocol.ENV_CODE_DIR: f"{mount}/{layout.code(experiment_id)}",
        protocol.ENV_SYS_DIR: sys_dir,
        # The watcher reports statuses from the job's conditions on this platform; keepers
        # of several replicas would race each other with conflicting ones.
        protocol.ENV_REPORT_STATUS: "0",
        ENV_REPLICA_TYPE: replica_type,
    }
    if primary is not None:
        plain[protocol.ENV_PRIMARY] = "1" if primary else "0"
    if role_spec.gpu_number == 0:
        # NNI's workaround (NVIDIA/k8s-device-plugin#61): without it a pod that asked for
        # no GPU sees every GPU of the node.
        plain["CUDA_VISIBLE_DEVICES"] = ""
    for name, value in (extra or {}).items():
        if name == protocol.ENV_TRIAL_TOKEN:
            raise ValueError(f"{name} must come from the token Secret, never a plain value")
        plain[name] = value
    index_ref = {"fieldRef": {"fieldPath": f"metadata.labels['{REPLICA_INDEX_LABEL}']"}}
    env: list[dict[str, Any]] = [{"name": ENV_REPLICA_INDEX, "valueFrom": index_ref}]
    env += [env_var(name, escape(value)) for name, value in plain.items()]
    # Unescaped on purpose: this is the only value that must expand $(KUBESWEEP_REPLICA_INDEX).
    env.append({"name": protocol.ENV_OUTPUT_DIR, "value": output})
    token_ref = {"secretKeyRef": {"name": token_secret, "key": TOKEN_KEY}}
    env.append({"name": protocol.ENV_TRIAL_TOKEN, "valueFrom": token_ref})
    return env
