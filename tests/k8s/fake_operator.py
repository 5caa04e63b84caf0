"""A fake Kubeflow training operator (v1) for one namespace: TFJobs and PyTorchJobs.

What the real operator does that kubesweep can observe, and nothing more:

* creates one pod per replica, named ``<job>-<replicatype>-<index>`` with the operator's labels
  (``training.kubeflow.org/job-name``, ``replica-type``, ``replica-index``, ``operator-name``,
  ``job-role=master`` on the Chief/Master), an ownerReference to the job, the replica's
  ``restartPolicy`` (``ExitCode`` -> ``Never``) and the framework env (``TF_CONFIG``;
  ``MASTER_ADDR``/``MASTER_PORT``/``WORLD_SIZE``/``RANK``);
* drives ``status`` through the /status subresource from the pods' phases, one transition per
  write so a watcher sees every step: ``Created`` -> ``Running`` -> ``Succeeded`` | ``Failed``
  (reasons ``TFJobCreated``, ``TFJobRunning``, ... and the operator's messages), with
  ``replicaStatuses``, ``startTime`` and ``completionTime``;
* success: TFJob - the Chief succeeded, else Worker 0 (``successPolicy: AllWorkers`` - every
  worker); PyTorchJob - the Master succeeded, else every Worker. Any failed pod -> ``Failed``;
* stands in for the garbage collector: when a job is deleted its pods are deleted (the bare
  apiserver has no GC), which lets the process kubelet kill their processes.

Not emulated: Services, restarts/backoffLimit, cleanPodPolicy, ttl, suspend, elastic policies,
gang scheduling, webhook validation and defaulting (see docs/k8s-testing.md).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tests.k8s.kubeapi import Watcher, request

log = logging.getLogger(__name__)

GROUP, VERSION = "kubeflow.org", "v1"
LABEL_JOB = "training.kubeflow.org/job-name"
LABEL_TYPE = "training.kubeflow.org/replica-type"
LABEL_INDEX = "training.kubeflow.org/replica-index"
LABEL_ROLE = "training.kubeflow.org/job-role"
LABEL_OPERATOR = "training.kubeflow.org/operator-name"


@dataclass(frozen=True)
class JobKind:
    kind: str
    plural: str
    specs_field: str
    container: str  # the container the operator requires and injects env into
    port: int
    operator_name: str
    primary: str  # Chief / Master


KINDS = {
    "tfjobs": JobKind(
        "TFJob", "tfjobs", "tfReplicaSpecs", "tensorflow", 2222, "tfjob-controller", "Chief"
    ),
    "pytorchjobs": JobKind(
        "PyTorchJob",
        "pytorchjobs",
        "pytorchReplicaSpecs",
        "pytorch",
        23456,
        "pytorchjob-controller",
        "Master",
    ),
}
TERMINAL = ("Succeeded", "Failed")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def condition_true(job: dict[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions") or []
    )


class FakeTrainingOperator:
    """Reconciles the TFJobs/PyTorchJobs of ``namespace`` on its own threads until ``stop()``."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._worker = threading.Thread(
            target=self._work, name=f"operator-{namespace}", daemon=True
        )
        self._errors: list[str] = []
        self._watchers = [
            Watcher(
                api,
                self._path(kind),
                functools.partial(self._on_job, plural),
                f"operator-{plural}-{namespace}",
            )
            for plural, kind in KINDS.items()
        ]
        self._watchers.append(
            Watcher(
                api,
                f"/api/v1/namespaces/{namespace}/pods",
                self._on_pod,
                f"operator-pods-{namespace}",
                {"labelSelector": LABEL_JOB},
            )
        )

    @property
    def errors(self) -> list[str]:
        return self._errors + [e for w in self._watchers for e in w.errors]

    def start(self) -> FakeTrainingOperator:
        self._worker.start()
        for watcher in self._watchers:
            watcher.start()
        for watcher in self._watchers:
            watcher.synced.wait(10)
        return self

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        self._queue.put(None)
        self._worker.join(10)

    # -- events -> work queue ----------------------------------------------------------------
    def _on_job(self, plural: str, event: str, job: dict[str, Any]) -> None:
        # (list items may lack `kind`, hence the plural bound per watcher)
        if event == "DELETED":
            self._queue.put(("gc", job["metadata"]["uid"]))
        else:
            self._queue.put((plural, job["metadata"]["name"]))

    def _on_pod(self, event: str, pod: dict[str, Any]) -> None:
        for owner in pod["metadata"].get("ownerReferences") or []:
            for plural, kind in KINDS.items():
                if owner.get("kind") == kind.kind:
                    self._queue.put((plural, owner["name"]))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if item[0] == "gc":
                    self._collect_garbage(item[1])
                else:
                    self._reconcile(KINDS[item[0]], item[1])
            except Exception as error:  # keep reconciling the other jobs; the fixture reports it
                log.exception("fake operator: %s failed", item)
                self._errors.append(f"{item}: {type(error).__name__}: {error}")

    # -- reconcile ---------------------------------------------------------------------------
    def _path(self, kind: JobKind, name: str = "") -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{kind.plural}"
        return f"{path}/{name}" if name else path

    def _pods(self, selector: str) -> list[dict[str, Any]]:
        listing = request(
            self.api,
            "GET",
            f"/api/v1/namespaces/{self.namespace}/pods",
            query={"labelSelector": selector},
        )
        return list(listing["items"])

    def _collect_garbage(self, owner_uid: str) -> None:
        for pod in self._pods(LABEL_JOB):
            owners = pod["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == owner_uid for o in owners):
                try:
                    request(
                        self.api,
                        "DELETE",
                        f"/api/v1/namespaces/{self.namespace}/pods/{pod['metadata']['name']}",
                    )
                except client.ApiException as error:
                    if error.status != 404:
                        raise

    def _reconcile(self, kind: JobKind, name: str) -> None:
        try:
            job = request(self.api, "GET", self._path(kind, name))
        except client.ApiException as error:
            if error.status == 404:
                return
            raise
        if job["metadata"].get("deletionTimestamp") or any(
            condition_true(job, t) for t in TERMINAL
        ):
            return
        specs: dict[str, Any] = job["spec"].get(kind.specs_field) or {}
        pods = {
            p["metadata"]["name"]: p
            for p in self._pods(f"{LABEL_JOB}={name}")
            if any(
                o.get("uid") == job["metadata"]["uid"]
                for o in p["metadata"].get("ownerReferences") or []
            )
        }
        phases: dict[str, list[str]] = {}
        for rtype, spec in specs.items():
            phases[rtype] = []
            for index in range(int(spec.get("replicas", 1))):
                pod_name = f"{name}-{rtype.lower()}-{index}"
                pod = pods.get(pod_name) or self._create_pod(kind, job, rtype, index)
                phases[rtype].append(pod.get("status", {}).get("phase") or "Pending")
        status = self._next_status(kind, job, specs, phases)
        if status is not None:
            # A full replace (like the operator's UpdateStatus): a merge patch could not drop a
            # replicaStatuses count that went to zero, and the resourceVersion guards the race.
            job["status"] = status
            try:
                request(self.api, "PUT", self._path(kind, name) + "/status", job)
            except client.ApiException as error:
                if error.status != 409:
                    raise
                self._queue.put((kind.plural, name))  # stale read: reconcile again

    def _next_status(
        self,
        kind: JobKind,
        job: dict[str, Any],
        specs: dict[str, Any],
        phases: dict[str, list[str]],
    ) -> dict[str, Any] | None:
        """The status after ONE more transition, or None when nothing changes."""
        meta = job["metadata"]
        ref = f"{meta['namespace']}/{meta['name']}"
        status = copy.deepcopy(job.get("status") or {})
        conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
        status["replicaStatuses"] = {
            rtype: {
                key: count
                for key, count in (
                    ("active", sum(p == "Running" for p in ps)),
                    ("succeeded", sum(p == "Succeeded" for p in ps)),
                    ("failed", sum(p == "Failed" for p in ps)),
                )
                if count
            }
            for rtype, ps in phases.items()
        }

        def add(ctype: str, message: str) -> dict[str, Any]:
            stamp = now()
            for existing in conditions:
                if ctype in TERMINAL and existing["type"] == "Running":
                    existing.update(status="False", lastUpdateTime=stamp, lastTransitionTime=stamp)
            conditions.append(
                {
                    "type": ctype,
                    "status": "True",
                    "reason": f"{kind.kind}{ctype}",
                    "message": message,
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                }
            )
            if ctype == "Running":
                status.setdefault("startTime", stamp)
            if ctype in TERMINAL:
                status["completionTime"] = stamp
            return status

        if "Created" not in {c["type"] for c in conditions}:
            return add("Created", f"{kind.kind} {ref} is created.")
        all_phases = [p for ps in phases.values() for p in ps]
        started = any(p in ("Running", *TERMINAL) for p in all_phases)
        if started and not any(c["type"] == "Running" for c in conditions):
            return add("Running", f"{kind.kind} {ref} is running.")
        for rtype, ps in phases.items():
            failed = sum(p == "Failed" for p in ps)
            if failed:
                return add(
                    "Failed",
                    f"{kind.kind} {ref} has failed because {failed} {rtype} replica(s) failed.",
                )
        if self._succeeded(kind, job, specs, phases):
            return add("Succeeded", f"{kind.kind} {ref} successfully completed.")
        old = job.get("status") or {}
        if status["replicaStatuses"] != old.get("replicaStatuses"):
            return status
        return None

    @staticmethod
    def _succeeded(
        kind: JobKind, job: dict[str, Any], specs: dict[str, Any], phases: dict[str, list[str]]
    ) -> bool:
        if kind.primary in phases:
            return phases[kind.primary][:1] == ["Succeeded"]
        workers = phases.get("Worker", [])
        if not workers:
            return False
        all_workers = kind.kind == "PyTorchJob" or job["spec"].get("successPolicy") == "AllWorkers"
        if all_workers:
            return all(p == "Succeeded" for p in workers)
        return workers[0] == "Succeeded"

    # -- pods --------------------------------------------------------------------------------
    def _create_pod(
        self, kind: JobKind, job: dict[str, Any], rtype: str, index: int
    ) -> dict[str, Any]:
        meta = job["metadata"]
        name = meta["name"]
        spec = job["spec"][kind.specs_field][rtype]
        template = copy.deepcopy(spec.get("template") or {})
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                LABEL_OPERATOR: kind.operator_name,
                LABEL_JOB: name,
                LABEL_TYPE: rtype.lower(),
                LABEL_INDEX: str(index),
            }
        )
        if rtype == kind.primary:
            labels[LABEL_ROLE] = "master"
        pod_spec = template.get("spec") or {}
        restart = spec.get("restartPolicy") or "Never"
        pod_spec["restartPolicy"] = "Never" if restart == "ExitCode" else restart
        extra_env = self._framework_env(kind, job, rtype, index)
        for container in pod_spec.get("containers") or []:
            if container.get("name") == kind.container:
                names = {e["name"] for e in container.get("env") or []}
                container["env"] = (container.get("env") or []) + [
                    e for e in extra_env if e["name"] not in names
                ]
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{rtype.lower()}-{index}",
                "namespace": self.namespace,
                "labels": labels,
                "annotations": (template.get("metadata") or {}).get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": kind.kind,
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        try:
            created: dict[str, Any] = request(
                self.api, "POST", f"/api/v1/namespaces/{self.namespace}/pods", pod
            )
        except client.ApiException as error:
            if error.status != 409:  # a racing reconcile already made it
                raise
            created = request(
                self.api,
                "GET",
                f"/api/v1/namespaces/{self.namespace}/pods/{pod['metadata']['name']}",
            )
        return created

    def _framework_env(
        self, kind: JobKind, job: dict[str, Any], rtype: str, index: int
    ) -> list[dict[str, str]]:
        name = job["metadata"]["name"]
        specs: dict[str, Any] = job["spec"][kind.specs_field]
        if kind.kind == "TFJob":
            cluster = {
                rt.lower(): [
                    f"{name}-{rt.lower()}-{i}.{self.namespace}.svc:{kind.port}"
                    for i in range(int(s.get("replicas", 1)))
                ]
                for rt, s in specs.items()
                if rt != "Evaluator"
            }
            tf_config = {
                "cluster": cluster,
                "task": {"type": rtype.lower(), "index": index},
                "environment": "cloud",
            }
            return [{"name": "TF_CONFIG", "value": json.dumps(tf_config)}]
        world = sum(int(s.get("replicas", 1)) for s in specs.values())
        rank = index if rtype == "Master" else index + ("Master" in specs)
        master = f"{name}-master-0" if "Master" in specs else f"{name}-worker-0"
        return [
            {"name": "MASTER_ADDR", "value": master},
            {"name": "MASTER_PORT", "value": str(kind.port)},
            {"name": "WORLD_SIZE", "value": str(world)},
            {"name": "RANK", "value": str(rank)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ]
