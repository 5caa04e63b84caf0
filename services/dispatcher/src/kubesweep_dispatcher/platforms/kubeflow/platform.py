"""The ``kubeflow`` platform: one TFJob or PyTorchJob per trial attempt."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesweep.config import ExperimentSpec, KubeflowTrainingService
from kubesweep.errors import ConfigError, PermanentError, TransientError
from kubesweep.messaging import TrialStatus
from kubesweep.records import TrialRecord
from kubesweep_dispatcher.platforms.base import JobObservation, LaunchRequest, Platform
from kubesweep_dispatcher.platforms.kubeflow import cluster, names, secrets
from kubesweep_dispatcher.platforms.kubeflow.following import Following, JobKey
from kubesweep_dispatcher.platforms.kubeflow.manifests import (
    JOB_KINDS,
    build_job,
    job_namespace,
    storage_volume,
)
from kubesweep_dispatcher.platforms.kubeflow.overrides import parse_overrides
from kubesweep_dispatcher.platforms.registry import register_platform

log = logging.getLogger(__name__)
DEFAULT_PENDING_TIMEOUT_S = 600.0
DEFAULT_MAX_ATTEMPTS = 3
# How long a followed job may be missing from the cache after its launch before it is read.
_EVENT_GRACE_S = 5.0
# `output/<role>-<index>/stdout` of the files API: the replica's pod log while it exists.
_LIVE_STDOUT = re.compile(r"output/(?P<role>[a-z]+)-(?P<index>\d+)/stdout")
_CONTAINERS = {"TFJob": "tensorflow", "PyTorchJob": "pytorch"}


def _handle(namespace: str, kind: str, name: str, version: str) -> str:
    return f"kubeflow:{namespace}/{kind}/{name}@{version}"


def parse_handle(handle: str) -> tuple[str, str, str, str] | None:
    """``(namespace, kind, name, version)`` of a kubeflow job handle."""
    prefix, _, rest = handle.partition(":")
    path, _, version = rest.partition("@")
    parts = path.split("/")
    if prefix != "kubeflow" or len(parts) != 3 or not version:
        return None
    return parts[0], parts[1], parts[2], version


@register_platform("kubeflow")
class KubeflowPlatform(Platform):
    """Creates, follows and deletes Kubeflow jobs through the API server."""

    name = "kubeflow"

    def __init__(
        self,
        kubeconfig: str | None = None,
        pvc_claim: str | None = None,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._pvc_claim = pvc_claim
        self._api: client.ApiClient | None = None
        self._versions: dict[str, str] = {}
        self._following = Following(lambda: self.api)

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._api = cluster.make_api_client(self._kubeconfig)
        return self._api

    def _kind(self, spec: ExperimentSpec) -> str:
        service = spec.training_service
        if not isinstance(service, KubeflowTrainingService):
            raise ConfigError("is not kubeflow", field="trainingService.platform")
        return JOB_KINDS[service.operator][0]

    def version(self, spec: ExperimentSpec) -> str:
        """The served kubeflow.org version for the experiment's job kind (discovered)."""
        kind = self._kind(spec)
        if kind not in self._versions:
            served = cluster.served_versions(self.api, kind)
            if not served:
                raise ConfigError(
                    f"the API server does not serve {kind}s (kubeflow.org/{cluster.PLURALS[kind]}):"
                    f" install the {cluster.OPERATORS[kind]} and its CRDs first",
                    field="kubeflowConfig.operator",
                )
            service = spec.training_service
            wanted = service.api_version if isinstance(service, KubeflowTrainingService) else ""
            self._versions[kind] = wanted if wanted in served else served[0]
        return self._versions[kind]

    def preflight(self, spec: ExperimentSpec) -> None:
        """Before the first trial: the operator's CRD is served and we may create jobs."""
        kind = self._kind(spec)
        self.version(spec)
        namespace = job_namespace(spec)
        cluster.check_can(self.api, namespace, "create", cluster.PLURALS[kind], cluster.GROUP)
        cluster.check_can(self.api, namespace, "create", "secrets")

    def launch(self, request: LaunchRequest) -> str:
        spec, trial = request.spec, request.trial
        kind = self._kind(spec)
        version = self.version(spec)
        namespace = job_namespace(spec)
        service = spec.training_service
        assert isinstance(service, KubeflowTrainingService)
        volume = storage_volume(service.storage, trial.experiment_id, claim_name=self._pvc_claim)
        core = client.CoreV1Api(self.api)
        if "azureFile" in volume:
            data = request.storage.kubernetes_secret_data()  # type: ignore[attr-defined]
            self._apply_secret(
                core,
                namespace,
                secrets.storage_secret(
                    trial.experiment_id,
                    data["azurestorageaccountname"],
                    data["azurestorageaccountkey"],
                    namespace=namespace,
                ),
            )
        self._apply_secret(
            core,
            namespace,
            secrets.token_secret(
                trial.experiment_id, trial.id, trial.attempt, request.token, namespace=namespace
            ),
        )
        manifest = build_job(
            spec,
            trial,
            attempt=trial.attempt,
            namespace=namespace,
            storage_volume=volume,
            collector_url=request.collector_url,
            api_version=version,
        )
        name = manifest["metadata"]["name"]
        objects = client.CustomObjectsApi(self.api)
        try:
            objects.create_namespaced_custom_object(
                cluster.GROUP, version, namespace, cluster.PLURALS[kind], manifest
            )
        except ApiException as exc:
            if exc.status != 409:
                raise self._error(exc, f"create {kind} {name}") from exc
            self._adopt(
                objects,
                namespace=namespace,
                kind=kind,
                version=version,
                name=name,
                manifest=manifest,
            )
        log.info(
            "created %s %s/%s",
            kind,
            namespace,
            name,
            extra={"experiment_id": trial.experiment_id, "trial_id": trial.id},
        )
        return _handle(namespace, kind, name, version)

    def _adopt(
        self,
        objects: client.CustomObjectsApi,
        *,
        namespace: str,
        kind: str,
        version: str,
        name: str,
        manifest: dict[str, Any],
    ) -> None:
        existing: Any = objects.get_namespaced_custom_object(
            cluster.GROUP, version, namespace, cluster.PLURALS[kind], name
        )
        wanted = manifest["metadata"]["labels"]
        labels = existing["metadata"].get("labels") or {}
        if any(labels.get(key) != value for key, value in wanted.items()):
            raise PermanentError(
                f"{kind} {namespace}/{name} exists and does not belong to this trial; "
                "delete it or choose another namespace"
            )

    def _apply_secret(self, core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> None:
        try:
            core.create_namespaced_secret(namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return  # deterministic content: a redelivered launch made it already
            raise self._error(exc, f"create Secret {body['metadata']['name']}") from exc

    @staticmethod
    def _error(exc: ApiException, what: str) -> Exception:
        message = f"cannot {what}: HTTP {exc.status} {exc.reason}"
        if cluster.transient(exc):
            return TransientError(message)
        return PermanentError(message)

    def cancel(self, trial: TrialRecord) -> None:
        parsed = parse_handle(trial.job)
        if parsed is None:
            return
        namespace, kind, name, version = parsed
        try:
            client.CustomObjectsApi(self.api).delete_namespaced_custom_object(
                cluster.GROUP,
                version,
                namespace,
                cluster.PLURALS[kind],
                name,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(exc, f"delete {kind} {name}") from exc
        # This attempt's Secrets only: cancel also ends an attempt that is being retried.
        self._delete_secrets(
            namespace, names.selector(trial.experiment_id, trial.id, trial.attempt)
        )

    def _delete_secrets(self, namespace: str, selector: str) -> None:
        try:
            client.CoreV1Api(self.api).delete_collection_namespaced_secret(
                namespace, label_selector=selector
            )
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(exc, "delete Secrets") from exc

    def cleanup_experiment(self, exp_id: str, spec: ExperimentSpec) -> None:
        """Delete every job and Secret of the experiment (jobs first: pods mount the Secrets)."""
        kind, version = self._kind(spec), self.version(spec)
        namespace = job_namespace(spec)
        selector = names.selector(exp_id)
        try:
            client.CustomObjectsApi(self.api).delete_collection_namespaced_custom_object(
                cluster.GROUP,
                version,
                namespace,
                cluster.PLURALS[kind],
                label_selector=selector,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(exc, f"delete the experiment's {kind}s") from exc
        self._delete_secrets(namespace, selector)

    def is_alive(self, trial: TrialRecord) -> bool | None:
        observation = self.observe(trial)
        return None if observation is None else observation.exists

    def follow(
        self,
        specs: Sequence[ExperimentSpec],
        notify: Callable[[str, str], None],
        *,
        resync_s: float = 300.0,
    ) -> None:
        """Watch the jobs (and their pods) in the namespaces of these experiments."""
        wanted: set[JobKey] = set()
        for spec in specs:
            try:
                wanted.add((job_namespace(spec), self._kind(spec), self.version(spec)))
            except (ConfigError, TransientError) as exc:
                log.warning("cannot follow the jobs of an experiment: %s", exc)
        self._following.follow(wanted, notify, resync_s=resync_s)

    def observe(self, trial: TrialRecord) -> JobObservation | None:
        """The trial's job from the followed cache; read from the API server when the
        namespace is not followed (yet) or the cache does not hold the job."""
        parsed = parse_handle(trial.job)
        if parsed is None:
            return None
        namespace, kind, name, version = parsed
        informer = self._following.job_informer((namespace, kind, version))
        job = informer.get(name) if informer is not None else None
        if job is not None:
            return self._observation(namespace, name, cluster.job_state(job))
        if informer is not None and time.time() - (trial.launched or 0.0) < _EVENT_GRACE_S:
            # Just created: its watch event is on the way. Asking now would cost a request
            # per sweep for every new job (and the first one seconds of client warm-up).
            return JobObservation(True, None, "", pending_since=trial.launched)
        # Not followed, or gone from the cache (deleted?): ask the API server.
        return self._observation(
            namespace, name, cluster.read_job(self.api, namespace, kind, name, version)
        )

    def _observation(self, namespace: str, name: str, state: cluster.JobState) -> JobObservation:
        if not state.exists:
            return JobObservation(False, TrialStatus.FAILED, state.message)
        if state.phase == "Succeeded":
            return JobObservation(True, TrialStatus.SUCCEEDED, state.message)
        if state.phase == "Failed":
            # The job's own pods say whether the cluster ended it (eviction) or the trial did.
            why = cluster.infrastructure_failure(cluster.list_job_pods(self.api, namespace, name))
            if why:
                return JobObservation(True, TrialStatus.FAILED, why, retryable=True)
            return JobObservation(True, TrialStatus.FAILED, state.message or "the job failed")
        if state.phase == "Running":
            return JobObservation(True, TrialStatus.RUNNING, "")
        pods = self._following.pods_of(namespace, name)
        if pods is None:
            pods = cluster.list_job_pods(self.api, namespace, name)
        reason = cluster.pending_reason(pods)
        return JobObservation(
            True,
            None,
            reason,
            pending_since=state.created,
            retryable=cluster.retryable_pending(reason),
        )

    def pending_timeout(self, spec: ExperimentSpec) -> float:
        timeout = parse_overrides(spec.extension).job.pending_timeout
        return float(timeout) if timeout else DEFAULT_PENDING_TIMEOUT_S

    def max_attempts(self, spec: ExperimentSpec) -> int:
        attempts = parse_overrides(spec.extension).job.max_attempts
        return attempts or DEFAULT_MAX_ATTEMPTS

    def read_live_file(self, trial: TrialRecord, relpath: str) -> bytes | None:
        """``output/<role>-<index>/stdout`` from the replica's pod log (through the API
        server, which asks the node's kubelet) while the pod exists; None otherwise, so the
        caller reads the keeper's copy on storage. The log is what ``kubectl logs`` shows:
        the trial's stdout and stderr interleaved, with the keeper's own lines."""
        match = _LIVE_STDOUT.fullmatch(relpath)
        parsed = parse_handle(trial.job)
        if match is None or parsed is None:
            return None
        namespace, kind, name, _version = parsed
        pod = f"{name}-{match['role']}-{match['index']}"
        try:
            response: Any = client.CoreV1Api(self.api).read_namespaced_pod_log(
                pod, namespace, container=_CONTAINERS[kind], _preload_content=False
            )
        except ApiException:
            return None  # gone, or not started yet (400 "waiting to start")
        if not 200 <= getattr(response, "status", 200) < 300:
            return None
        data: bytes = response.data
        return data
