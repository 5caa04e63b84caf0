"""Talking to the Kubernetes API server: clients, preflight checks, job observation."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubesweep.errors import ConfigError, TransientError

log = logging.getLogger(__name__)
GROUP = "kubeflow.org"
PLURALS = {"TFJob": "tfjobs", "PyTorchJob": "pytorchjobs"}
OPERATORS = {
    "TFJob": "tf-operator (Kubeflow training-operator)",
    "PyTorchJob": "pytorch-operator (Kubeflow training-operator)",
}
DELETED_OUT_OF_BAND = "the job was deleted outside kubesweep"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
# Pending reasons that another attempt may not meet (another node, a registry that is back).
_RETRYABLE_PENDING = ("Unschedulable", "ImagePullBackOff", "ErrImagePull")
# Pod status reasons of a kubelet/scheduler ending a pod for the node's sake, not the trial's.
_INFRA_POD_REASONS = ("Evicted", "Preempting", "Preempted", "NodeShutdown", "Shutdown", "NodeLost")
_POD_WAIT_REASONS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CrashLoopBackOff",
)


def make_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """From ``kubeconfig`` (or KUBECONFIG / ~/.kube/config), else the in-cluster account."""
    try:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        return api
    except (config.ConfigException, FileNotFoundError, TypeError) as outside:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            raise ConfigError(
                f"no Kubernetes credentials: {outside}; set KUBECONFIG or run in a cluster",
                field="kubeflowConfig",
            ) from outside
        return client.ApiClient()


def transient(exc: ApiException) -> bool:
    return exc.status in (429, 500, 502, 503, 504) or exc.status == 0


T = TypeVar("T")
_ATTEMPTS = 4


def retrying(call: Callable[[], T]) -> T:
    """``call()``, again after a 429 or 5xx (honouring Retry-After, at most 2 s a wait).

    Discovery and permission checks answer a user's submission and a launch; client-go
    retries these statuses by itself, the Python client does not, so one throttled or
    failed request refused a good experiment (found by tests/chaos/test_kubeflow_chaos)."""
    delay = 0.2
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return call()
        except ApiException as exc:
            if not transient(exc) or attempt == _ATTEMPTS:
                raise
            hinted = (exc.headers or {}).get("Retry-After") if exc.headers else None
            try:
                wait = float(hinted) if hinted else delay
            except ValueError:
                wait = delay
            time.sleep(min(wait, 2.0))
            delay *= 2
    raise AssertionError("unreachable")


def served_versions(api: client.ApiClient, kind: str) -> list[str]:
    """The kubeflow.org versions under which the API server serves ``kind``'s resource."""
    plural = PLURALS[kind]
    # Raw JSON: turning discovery documents into the client's models costs ~1.5 s on the
    # first call of a process (lazily built pydantic models), paid by the first launch.
    try:
        groups = retrying(
            lambda: raw_json(client.ApisApi(api).get_api_versions(_preload_content=False))
        )
    except ApiException as exc:
        raise TransientError(f"cannot list API groups: {exc.reason}") from exc
    versions = [
        v["version"]
        for g in groups.get("groups") or []
        if g.get("name") == GROUP
        for v in g.get("versions") or []
    ]
    found = []
    for version in versions:
        try:
            resources = retrying(functools.partial(_api_resources, api, version))
        except ApiException as exc:
            if transient(exc):
                # Not "the CRD is missing": that would refuse the experiment for good.
                raise TransientError(f"cannot list {GROUP}/{version}: {exc.reason}") from exc
            continue
        if any(r.get("name") == plural for r in resources.get("resources") or []):
            found.append(version)
    return found


def _api_resources(api: client.ApiClient, version: str) -> dict[str, Any]:
    return raw_json(
        client.CustomObjectsApi(api).get_api_resources(GROUP, version, _preload_content=False)
    )


def raw_json(response: Any) -> dict[str, Any]:
    """The body of a ``_preload_content=False`` reply; ApiException on an error status (the
    typed client does not check those)."""
    status = getattr(response, "status", 200)
    if not 200 <= status < 300:
        raise ApiException(status=status, reason=getattr(response, "reason", ""))
    data: dict[str, Any] = json.loads(response.data)
    return data


def check_can(
    api: client.ApiClient, namespace: str, verb: str, resource: str, group: str = ""
) -> None:
    """Refuse early, with the RBAC reason, what the API server would refuse at launch."""
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, resource=resource, group=group
            )
        )
    )
    try:
        reply = retrying(
            lambda: client.AuthorizationV1Api(api).create_self_subject_access_review(review)
        )
    except ApiException as exc:
        raise TransientError(f"cannot check permissions: {exc.reason}") from exc
    status = reply.status
    if status is None or not status.allowed:
        why = (status.reason if status else None) or "no RBAC rule allows it"
        raise ConfigError(
            f"the dispatcher may not {verb} {resource} in namespace {namespace!r} ({why}); "
            "grant it with a Role and RoleBinding (the Helm chart creates them)",
            field="kubeflowConfig.namespace",
        )


@dataclass(frozen=True)
class JobState:
    """What the cluster says about one trial's job."""

    exists: bool
    phase: str = "Created"  # the last condition type: Created, Running, Succeeded, Failed
    message: str = ""
    created: float | None = None


def job_state(job: dict[str, Any]) -> JobState:
    """The state of a job object (as listed, watched or read)."""
    conditions = [
        c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
    ]
    created = job["metadata"].get("creationTimestamp")
    stamp = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() if created else None
    if not conditions:
        return JobState(True, "Created", "", stamp)
    last = conditions[-1]
    phase = {"Restarting": "Running"}.get(last["type"], last["type"])
    message = last.get("message") or last.get("reason") or ""
    return JobState(True, phase, message, stamp)


def read_job(api: client.ApiClient, namespace: str, kind: str, name: str, version: str) -> JobState:
    try:
        job: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, version, namespace, PLURALS[kind], name
        )
    except ApiException as exc:
        if exc.status == 404:
            return JobState(exists=False, message=DELETED_OUT_OF_BAND)
        raise TransientError(f"cannot read {kind} {name}: {exc.reason}") from exc
    return job_state(job)


def list_job_pods(api: client.ApiClient, namespace: str, job_name: str) -> list[dict[str, Any]]:
    """The job's pods as plain objects (empty when they cannot be listed)."""
    try:
        response: Any = client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}", _preload_content=False
        )
    except ApiException:
        return []
    if not 200 <= getattr(response, "status", 200) < 300:
        return []
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def pending_reason(pods: list[dict[str, Any]]) -> str:
    """Why the job's pods are not running yet (Unschedulable, ImagePullBackOff, ...)."""
    for pod in pods:
        name = pod["metadata"].get("name", "?")
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _POD_WAIT_REASONS:
                return f"pod {name}: {waiting['reason']}: {waiting.get('message') or ''}".strip(
                    " :"
                )
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                why = f"{condition.get('reason') or ''}: {condition.get('message') or ''}"
                return f"pod {name}: {why}".strip(" :")
    return ""


def retryable_pending(reason: str) -> bool:
    """Whether a pending reason is the infrastructure's (another attempt may be placed or
    pull its image), not the experiment's (a bad image name, a missing Secret)."""
    return any(f": {word}" in reason for word in _RETRYABLE_PENDING)


def infrastructure_failure(pods: list[dict[str, Any]]) -> str:
    """Why a failed job's pod was ended by the cluster (eviction, preemption, node
    shutdown) rather than by its own command; "" when none was."""
    for pod in pods:
        name = pod["metadata"].get("name", "?")
        status = pod.get("status") or {}
        reason = status.get("reason") or ""
        if reason in _INFRA_POD_REASONS:
            return f"pod {name}: {reason}: {status.get('message') or ''}".strip(" :")
        for condition in status.get("conditions") or []:
            if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
                reason = condition.get("reason") or "DisruptionTarget"
                why = f"{reason}: {condition.get('message') or ''}"
                return f"pod {name}: {why}".strip(" :")
    return ""
