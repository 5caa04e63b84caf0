"""The training operator's admission rules for TFJob/PyTorchJob, ported to Python.

The CRD schemas constrain almost nothing (no enums, free replica-type and container names,
kubernetes-test-env.md §8.2); the operator's validating webhook (v1.9.4,
``pkg/webhooks/{tensorflow,pytorch}/*_webhook.go`` and ``pkg/webhooks/utils``) rejects the
rest at create time. No test apiserver runs that webhook, so kubesweep checks its manifests
here. Messages follow Kubernetes' field-error style: ``<path>: <Type>: <detail>``.

With ``nni_rules`` (the default), NNI's per-operator role rules are checked as well
(tf-operator: Worker required, no Master; pytorch-operator: Master required).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesweep_dispatcher.platforms.kubeflow.names import is_dns1035_label

__all__ = ["SUPPORTED_MANAGERS", "validate_job"]

# v1.9.4 `supportedJobControllers`: the operator itself and Kueue's MultiKueue.
SUPPORTED_MANAGERS = ("kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue")

_KINDS = {
    # kind: (replica-specs key, default container, valid replica types or None for any)
    "TFJob": ("tfReplicaSpecs", "tensorflow", None),
    "PyTorchJob": ("pytorchReplicaSpecs", "pytorch", ("Master", "Worker")),
}


def _replica_errors(
    specs: Mapping[str, Any], path: str, container_name: str, valid: tuple[str, ...] | None
) -> list[str]:
    """utils.ValidateReplicaSpecs: types, containers, images, the framework container."""
    errors: list[str] = []
    for rtype, rspec in specs.items():
        role_path = f"{path}[{rtype}]"
        containers_path = f"{role_path}.template.spec.containers"
        if valid is not None and rtype not in valid:
            supported = ", ".join(f'"{v}"' for v in valid)
            errors.append(
                f'{role_path}: Unsupported value: "{rtype}": supported values: {supported}'
            )
        template = (rspec or {}).get("template") or {}
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers:
            errors.append(f"{containers_path}: Required value: must be specified")
        present = False
        for index, container in enumerate(containers):
            if not container.get("image"):
                errors.append(f"{containers_path}[{index}].image: Required value: must be required")
            if container.get("name") == container_name:
                present = True
        if not present:
            errors.append(
                f"{containers_path}: Required value: must have at least one container "
                f"with name {container_name}"
            )
    return errors


def _pytorch_errors(spec: Mapping[str, Any], specs: Mapping[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    elastic = spec.get("elasticPolicy")
    if elastic is not None:
        if "Worker" not in specs:
            errors.append(
                f"{path}[Worker]: Required value: must be configured if elastic policy is used"
            )
        if elastic.get("nProcPerNode") is not None and spec.get("nprocPerNode") is not None:
            errors.append(
                "spec.elasticPolicy.nProcPerNode: Forbidden: "
                "must not be used with spec.nprocPerNode"
            )
    for rtype, rspec in specs.items():
        replicas = (rspec or {}).get("replicas")
        if rtype == "Master":
            if replicas != 1:
                errors.append(f"{path}[Master].replicas: Forbidden: must be 1")
        elif replicas is not None and replicas < 1:
            errors.append(f"{path}[{rtype}].replicas: Forbidden: must be at least 1")
    return errors


def _nni_errors(kind: str, specs: Mapping[str, Any], path: str) -> list[str]:
    required, forbidden = ("Worker", ("Master",)) if kind == "TFJob" else ("Master", ("PS",))
    errors = [
        f"{path}[{rtype}]: Forbidden: not a {kind} role in NNI"
        for rtype in forbidden
        if rtype in specs
    ]
    if required not in specs:
        errors.append(f"{path}[{required}]: Required value: NNI requires a {required} role")
    return errors


def validate_job(manifest: Mapping[str, Any], *, nni_rules: bool = True) -> list[str]:
    """Every error the operator's webhook (and, with ``nni_rules``, NNI) would report."""
    kind = manifest.get("kind")
    if kind not in _KINDS:
        return [f'kind: Unsupported value: "{kind}": supported values: "TFJob", "PyTorchJob"']
    specs_key, container_name, valid = _KINDS[str(kind)]
    errors: list[str] = []
    name = str((manifest.get("metadata") or {}).get("name") or "")
    if not is_dns1035_label(name):
        errors.append(
            f'metadata.name: Invalid value: "{name}": a DNS-1035 label must consist of lower '
            "case alphanumeric characters or '-', start with an alphabetic character, end "
            "with an alphanumeric character, and be at most 63 characters"
        )
    spec = manifest.get("spec") or {}
    manager = (spec.get("runPolicy") or {}).get("managedBy")
    if manager is not None and manager not in SUPPORTED_MANAGERS:
        supported = ", ".join(f'"{m}"' for m in SUPPORTED_MANAGERS)
        errors.append(
            f'spec.runPolicy.managedBy: Unsupported value: "{manager}": '
            f"supported values: {supported}"
        )
    path = f"spec.{specs_key}"
    specs = spec.get(specs_key)
    if specs is None:
        return [*errors, f"{path}: Required value: must be required"]
    errors += _replica_errors(specs, path, container_name, valid)
    if kind == "TFJob":
        # IsChiefOrMaster: at most one of the Chief and Master replica types.
        if sum(1 for rtype in specs if rtype in ("Chief", "Master")) > 1:
            errors.append(f"{path}: Forbidden: must not have more than 1 Chief or Master role")
    else:
        errors += _pytorch_errors(spec, specs, path)
    if nni_rules:
        errors += _nni_errors(str(kind), specs, path)
    return errors
