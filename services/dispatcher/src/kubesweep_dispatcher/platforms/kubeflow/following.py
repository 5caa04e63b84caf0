"""The jobs and pods kubesweep follows, per namespace: informers started and stopped on demand.

One job informer per ``(namespace, kind, version)`` and one pod informer per namespace, all
selected by ``app.kubernetes.io/managed-by=kubesweep`` (jobs and pod templates carry it), so a
restarted dispatcher re-attaches to every job by label with its first list. Each change is
passed on as ``notify(experiment_id, trial_id)``, read from the job's annotations (raw ids;
label values may be hashed) - for a pod, from its job's.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client

from kubesweep_dispatcher.platforms.kubeflow import cluster, names
from kubesweep_dispatcher.platforms.kubeflow.informer import Informer, Obj
from kubesweep_dispatcher.platforms.kubeflow.manifests import (
    EXPERIMENT_ID_ANNOTATION,
    TRIAL_ID_ANNOTATION,
)

log = logging.getLogger(__name__)
JobKey = tuple[str, str, str]  # namespace, kind, version
Notify = Callable[[str, str], None]


class _Checked:
    """A list call whose non-2xx replies raise, for informers' lists (watches check already)."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def __call__(self, **kwargs: Any) -> Any:
        response = self._call(**kwargs)
        if not kwargs.get("watch"):
            cluster.raw_json(response)  # raises on an error status
        return response


class Following:
    """The informers of the namespaces that live experiments use."""

    def __init__(self, api: Callable[[], client.ApiClient], *, backoff_s: float = 0.5) -> None:
        self._api = api
        self._resync_s = 300.0
        self._backoff_s = backoff_s
        self._lock = threading.Lock()
        self._jobs: dict[JobKey, Informer] = {}
        self._pods: dict[str, Informer] = {}
        self._notify: Notify | None = None

    def follow(self, wanted: set[JobKey], notify: Notify, *, resync_s: float) -> None:
        """Follow exactly ``wanted`` (start what is new, stop what is no longer needed)."""
        self._notify = notify
        self._resync_s = resync_s
        with self._lock:
            # Stopped after the lock is released: a stopping informer may be delivering an
            # event, and _on_pod takes the lock.
            retired = [self._jobs.pop(key) for key in set(self._jobs) - wanted]
            namespaces = {key[0] for key in wanted}
            retired += [self._pods.pop(ns) for ns in set(self._pods) - namespaces]
            for key in wanted - set(self._jobs):
                self._jobs[key] = self._job_informer(*key)
                self._jobs[key].start()
            for namespace in namespaces - set(self._pods):
                self._pods[namespace] = self._pod_informer(namespace)
                self._pods[namespace].start()
        for informer in retired:
            informer.stop()

    def close(self) -> None:
        with self._lock:
            informers = [*self._jobs.values(), *self._pods.values()]
            self._jobs.clear()
            self._pods.clear()
        for informer in informers:
            informer.stop()

    def job_informer(self, key: JobKey) -> Informer | None:
        """The synced informer of ``key``'s jobs, or None (not followed, or not listed yet)."""
        informer = self._jobs.get(key)
        return informer if informer is not None and informer.synced.is_set() else None

    def pods_of(self, namespace: str, job_name: str) -> list[Obj] | None:
        """The job's pods from the cache; None when the namespace's pods are not synced."""
        informer = self._pods.get(namespace)
        if informer is None or not informer.synced.is_set():
            return None
        return informer.indexed(job_name)

    # -- informers -------------------------------------------------------------------------

    def _job_informer(self, namespace: str, kind: str, version: str) -> Informer:
        call = functools.partial(
            client.CustomObjectsApi(self._api()).list_namespaced_custom_object,
            cluster.GROUP,
            version,
            namespace,
            cluster.PLURALS[kind],
        )
        return Informer(
            f"{cluster.PLURALS[kind]}.{version} in {namespace}",
            _Checked(call),
            selector=names.selector(),
            notify=self._on_job,
            resync_s=self._resync_s,
            backoff_s=self._backoff_s,
        )

    def _pod_informer(self, namespace: str) -> Informer:
        call = functools.partial(client.CoreV1Api(self._api()).list_namespaced_pod, namespace)
        return Informer(
            f"pods in {namespace}",
            _Checked(call),
            selector=names.selector(),
            notify=functools.partial(self._on_pod, namespace),
            resync_s=self._resync_s,
            backoff_s=self._backoff_s,
            index=_job_of_pod,
        )

    def _on_job(self, job: Obj) -> None:
        annotations = job["metadata"].get("annotations") or {}
        exp_id = annotations.get(EXPERIMENT_ID_ANNOTATION)
        trial_id = annotations.get(TRIAL_ID_ANNOTATION)
        if exp_id and trial_id and self._notify is not None:
            self._notify(exp_id, trial_id)

    def _on_pod(self, namespace: str, pod: Obj) -> None:
        job_name = _job_of_pod(pod)
        if not job_name:
            return
        with self._lock:
            followed = list(self._jobs.items())
        for (job_namespace, _kind, _version), informer in followed:
            if job_namespace != namespace:
                continue
            job = informer.get(job_name)
            if job is not None:
                self._on_job(job)
                return


def _job_of_pod(pod: Obj) -> str | None:
    """The name of the training job a pod belongs to (the operator's label)."""
    value = (pod["metadata"].get("labels") or {}).get(cluster.JOB_NAME_LABEL)
    return None if value is None else str(value)
