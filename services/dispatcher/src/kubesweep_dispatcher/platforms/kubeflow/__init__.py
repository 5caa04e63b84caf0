"""The ``kubeflow`` platform's building blocks: each trial attempt is one TFJob or PyTorchJob.

Pure functions only (no Kubernetes API calls): names and labels (``names``), the
``kubesweep:`` block's overrides (``overrides``), the keeper container (``keeper_command``),
the job manifest (``manifests``), its Secrets (``secrets``) and the training operator's
admission rules (``webhook``). The platform lifecycle that creates and watches jobs builds
on these. See docs/kubeflow.md.
"""

from kubesweep_dispatcher.platforms.kubeflow.manifests import (
    build_job,
    job_namespace,
    storage_volume,
)
from kubesweep_dispatcher.platforms.kubeflow.names import job_name, labels, selector
from kubesweep_dispatcher.platforms.kubeflow.overrides import KubeflowOverrides, parse_overrides
from kubesweep_dispatcher.platforms.kubeflow.webhook import validate_job

__all__ = [
    "KubeflowOverrides",
    "build_job",
    "job_name",
    "job_namespace",
    "labels",
    "parse_overrides",
    "selector",
    "storage_volume",
    "validate_job",
]
