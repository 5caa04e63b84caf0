"""Smoke tests of the Kubernetes tier: CRDs served, jobs run as processes, logs, RBAC, Pending.

Everything goes through the real API server with the ``kubernetes`` client's own calls (the code
paths kubesweep uses); only the operator and the kubelet are fakes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.k8s.cluster import wait_until
from tests.k8s.conftest import Cluster, Helm, KubeletFactory, RoleTokenFactory, unique_name
from tests.k8s.fake_operator import FakeTrainingOperator
from tests.k8s.kubeapi import request
from tests.k8s.process_kubelet import ProcessKubelet

pytestmark = pytest.mark.k8s

GROUP, VERSION = "kubeflow.org", "v1"


def tfjob(
    name: str, command: list[str], image: str = "python:3.11", **worker: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TFJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubesweep"}},
        "spec": {
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "tensorflow", "image": image, "command": command, **worker}
                            ]
                        }
                    },
                }
            }
        },
    }


def replica(role_container: str, command: list[str], replicas: int = 1) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {
            "spec": {
                "containers": [{"name": role_container, "image": "python:3.11", "command": command}]
            }
        },
    }


def watch_until(
    list_func: Callable[..., Any],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
    **kwargs: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """List, then watch from the list's resourceVersion until ``predicate(obj)``; returns the
    matching object and every object state seen (the ``kubernetes`` client's own Watch)."""
    listing = json.loads(list_func(**kwargs, _preload_content=False).data)
    seen: list[dict[str, Any]] = list(listing["items"])
    for obj in seen:
        if predicate(obj):
            return obj, seen
    deadline = time.monotonic() + timeout
    version = listing["metadata"]["resourceVersion"]
    while (remaining := deadline - time.monotonic()) > 0:
        for event in watch.Watch().stream(
            list_func,
            resource_version=version,
            timeout_seconds=max(1, int(remaining)),
            deserialize=False,
            **kwargs,
        ):
            obj = event["object"]
            version = obj["metadata"]["resourceVersion"]
            seen.append(obj)
            if event["type"] != "DELETED" and predicate(obj):
                return obj, seen
    raise TimeoutError(f"no object matched within {timeout} s; last: {seen[-1:]}")


def wait_gone(list_func: Callable[..., Any], timeout: float = 30, **kwargs: Any) -> None:
    """Until the (field-selected) collection is empty: list, then watch for DELETED."""
    listing = json.loads(list_func(**kwargs, _preload_content=False).data)
    remaining = {item["metadata"]["name"] for item in listing["items"]}
    version = listing["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while remaining and (left := deadline - time.monotonic()) > 0:
        for event in watch.Watch().stream(
            list_func,
            resource_version=version,
            timeout_seconds=max(1, int(left)),
            deserialize=False,
            **kwargs,
        ):
            version = event["object"]["metadata"]["resourceVersion"]
            if event["type"] == "DELETED":
                remaining.discard(event["object"]["metadata"]["name"])
            if not remaining:
                return
    assert not remaining, f"still present after {timeout} s: {sorted(remaining)}"


def condition_types(job: dict[str, Any]) -> list[str]:
    return [
        c["type"]
        for c in (job.get("status") or {}).get("conditions") or []
        if c["status"] == "True"
    ]


def is_finished(job: dict[str, Any]) -> bool:
    return bool({"Succeeded", "Failed"} & set(condition_types(job)))


def wait_job(api: client.ApiClient, ns: str, plural: str, name: str) -> tuple[dict, list[str]]:
    """Watch the job until Succeeded/Failed; returns it and the sequence of last conditions."""
    job, seen = watch_until(
        client.CustomObjectsApi(api).list_namespaced_custom_object,
        is_finished,
        group=GROUP,
        version=VERSION,
        namespace=ns,
        plural=plural,
        field_selector=f"metadata.name={name}",
    )
    steps: list[str] = []
    for state in seen:
        conditions = (state.get("status") or {}).get("conditions") or []
        if conditions and (not steps or steps[-1] != conditions[-1]["type"]):
            steps.append(conditions[-1]["type"])
    return job, steps


def assert_steps(job: dict, steps: list[str], expected: list[str]) -> None:
    """The operator wrote every condition in order; the watch saw them in order (on a busy
    machine the first list can already find the job past ``Created``)."""
    assert [c["type"] for c in job["status"]["conditions"]] == expected
    assert steps
    assert steps == expected[len(expected) - len(steps) :], steps


def test_server_and_crds_are_served(k8s_cluster: Cluster) -> None:
    version = client.VersionApi(k8s_cluster.api).get_code()
    assert version.git_version == "v1.20.2"
    discovery = request(k8s_cluster.api, "GET", f"/apis/{GROUP}/{VERSION}")
    names = {r["name"] for r in discovery["resources"]}
    assert {"tfjobs", "tfjobs/status", "pytorchjobs", "pytorchjobs/status"} <= names
    kinds = {r["name"]: r["kind"] for r in discovery["resources"]}
    assert kinds["tfjobs"] == "TFJob"
    assert kinds["pytorchjobs"] == "PyTorchJob"


def test_helm_reaches_the_cluster(helm: Helm, k8s_namespace: str) -> None:
    assert helm("version", "--short").stdout.startswith("v3.17.2")
    assert helm("list", "-n", k8s_namespace, "-o", "json").stdout.strip() == "[]"


def test_tfjob_runs_as_process_and_log_reads_back(
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    process_kubelet: ProcessKubelet,
) -> None:
    name = unique_name("hello")
    created = client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(name, ["python3", "-c", "print('hello')"])
    )
    assert created["metadata"]["uid"]

    job, steps = wait_job(k8s_api, k8s_namespace, "tfjobs", name)
    assert_steps(job, steps, ["Created", "Running", "Succeeded"])
    final = job["status"]["conditions"]
    assert final[-1]["reason"] == "TFJobSucceeded"
    assert [c["status"] for c in final if c["type"] == "Running"] == ["False"]
    assert job["status"]["replicaStatuses"]["Worker"] == {"succeeded": 1}

    core = client.CoreV1Api(k8s_api)
    pods = core.list_namespaced_pod(
        k8s_namespace, label_selector=f"training.kubeflow.org/job-name={name}"
    ).items
    assert [p.metadata.name for p in pods] == [f"{name}-worker-0"]
    pod = pods[0]
    assert pod.metadata.labels["training.kubeflow.org/replica-type"] == "worker"
    assert pod.metadata.labels["training.kubeflow.org/replica-index"] == "0"
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("TFJob", name, created["metadata"]["uid"])
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    tf_config = {e.name: e.value for e in pod.spec.containers[0].env}["TF_CONFIG"]
    assert json.loads(tf_config)["task"] == {"type": "worker", "index": 0}

    # The real pods/log path: apiserver -> node's kubelet endpoint -> the process's output.
    assert core.read_namespaced_pod_log(pod.metadata.name, k8s_namespace) == "hello\n"


def test_pytorchjob_master_and_worker(
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    process_kubelet: ProcessKubelet,
) -> None:
    name = unique_name("torch")
    show = ["python3", "-c", "import os; print(os.environ['RANK'], os.environ['WORLD_SIZE'])"]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": replica("pytorch", show),
                "Worker": replica("pytorch", show),
            }
        },
    }
    client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "pytorchjobs", body
    )
    job, steps = wait_job(k8s_api, k8s_namespace, "pytorchjobs", name)
    assert_steps(job, steps, ["Created", "Running", "Succeeded"])
    assert job["status"]["conditions"][-1]["reason"] == "PyTorchJobSucceeded"
    core = client.CoreV1Api(k8s_api)
    assert core.read_namespaced_pod_log(f"{name}-master-0", k8s_namespace) == "0 2\n"
    # The job succeeds with its master; the worker may still be finishing.
    deadline = time.monotonic() + 60
    while core.read_namespaced_pod(f"{name}-worker-0", k8s_namespace).status.phase not in (
        "Succeeded",
        "Failed",
    ):
        assert time.monotonic() < deadline, "the worker pod never finished"
        time.sleep(0.2)
    assert core.read_namespaced_pod_log(f"{name}-worker-0", k8s_namespace) == "1 2\n"
    master = core.read_namespaced_pod(f"{name}-master-0", k8s_namespace)
    assert master.metadata.labels["training.kubeflow.org/job-role"] == "master"


def test_failed_worker_fails_the_job(
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    process_kubelet: ProcessKubelet,
) -> None:
    name = unique_name("boom")
    command = ["python3", "-c", "import sys; print('bad'); sys.exit(3)"]
    client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(name, command)
    )
    job, steps = wait_job(k8s_api, k8s_namespace, "tfjobs", name)
    assert_steps(job, steps, ["Created", "Running", "Failed"])
    failed = job["status"]["conditions"][-1]
    assert failed["reason"] == "TFJobFailed"
    assert "1 Worker replica(s) failed" in failed["message"]
    pod = client.CoreV1Api(k8s_api).read_namespaced_pod(f"{name}-worker-0", k8s_namespace)
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_role_without_create_gets_403(
    k8s_namespace: str, role_token: RoleTokenFactory, k8s_api: client.ApiClient
) -> None:
    reader = role_token(
        [{"apiGroups": [GROUP], "resources": ["tfjobs"], "verbs": ["get", "list", "watch"]}]
    )
    custom = client.CustomObjectsApi(reader.api)
    custom.list_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "tfjobs")  # allowed
    with pytest.raises(client.ApiException) as denied:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(unique_name("x"), ["true"])
        )
    assert denied.value.status == 403
    assert f"system:serviceaccount:{k8s_namespace}:{reader.service_account}" in str(
        denied.value.body
    )
    # Positive control: the same call with `create` granted succeeds.
    writer = role_token([{"apiGroups": [GROUP], "resources": ["tfjobs"], "verbs": ["create"]}])
    made = client.CustomObjectsApi(writer.api).create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(unique_name("y"), ["true"])
    )
    assert made["metadata"]["uid"]


def test_pending_reasons(
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    process_kubelet: ProcessKubelet,
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    core = client.CoreV1Api(k8s_api)
    stuck = unique_name("stuck")
    pulling = unique_name("pull")
    custom.create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(stuck, ["true"], "unschedulable/gpu")
    )
    custom.create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(pulling, ["true"], "imagepullbackoff/x:1")
    )

    def has_condition_reason(pod: dict[str, Any]) -> bool:
        conditions = (pod.get("status") or {}).get("conditions") or []
        return any(c.get("reason") == "Unschedulable" for c in conditions)

    def has_waiting_reason(pod: dict[str, Any]) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return any(
            (s.get("state") or {}).get("waiting", {}).get("reason") == "ImagePullBackOff"
            for s in statuses
        )

    unschedulable, _ = watch_until(
        core.list_namespaced_pod,
        has_condition_reason,
        namespace=k8s_namespace,
        field_selector=f"metadata.name={stuck}-worker-0",
    )
    assert unschedulable["status"]["phase"] == "Pending"
    assert not unschedulable["spec"].get("nodeName")
    backoff, _ = watch_until(
        core.list_namespaced_pod,
        has_waiting_reason,
        namespace=k8s_namespace,
        field_selector=f"metadata.name={pulling}-worker-0",
    )
    assert backoff["status"]["phase"] == "Pending"
    assert backoff["spec"]["nodeName"] == process_kubelet.node_name
    for pod, reason in ((stuck, "FailedScheduling"), (pulling, "BackOff")):
        # (events are written independently of the status: watch for them, too)
        watch_until(
            core.list_namespaced_event,
            lambda _: True,
            namespace=k8s_namespace,
            field_selector=f"involvedObject.name={pod}-worker-0,reason={reason}",
        )
    for name in (stuck, pulling):
        job = custom.get_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "tfjobs", name)
        assert condition_types(job) == ["Created"]


def test_deleting_the_job_kills_its_process(
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    fake_operator: FakeTrainingOperator,
    process_kubelet: ProcessKubelet,
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    core = client.CoreV1Api(k8s_api)
    name = unique_name("sleepy")
    script = "import time; print('starting'); print('up', flush=True); time.sleep(600)"
    command = ["python3", "-c", script]
    custom.create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, "tfjobs", tfjob(name, command)
    )
    pod_name = f"{name}-worker-0"
    watch_until(
        core.list_namespaced_pod,
        lambda pod: (pod.get("status") or {}).get("phase") == "Running",
        namespace=k8s_namespace,
        field_selector=f"metadata.name={pod_name}",
    )
    run = process_kubelet.run_of(pod_name)
    assert run is not None
    process = run.processes["tensorflow"]
    assert process.poll() is None
    # Logs of a running pod (output appears as the process writes it: no event to watch, so
    # poll with a deadline), with the client's tailLines forwarded to the kubelet.
    wait_until(
        lambda: core.read_namespaced_pod_log(pod_name, k8s_namespace, tail_lines=1) == "up\n",
        10,
        "the running pod's log",
    )

    # `kubectl logs -f`: a follow stream that ends when the process does.
    follow = core.read_namespaced_pod_log(
        pod_name, k8s_namespace, follow=True, _preload_content=False
    )

    custom.delete_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "tfjobs", name)
    # operator (as GC) deletes the pod -> graceful delete -> kubelet kills, then removes it.
    wait_gone(
        core.list_namespaced_pod,
        namespace=k8s_namespace,
        field_selector=f"metadata.name={pod_name}",
    )
    assert process.wait(5) == -15  # SIGTERM from the kubelet
    assert follow.read() == b"starting\nup\n"


def test_volumes_env_and_working_dir(
    k8s_api: client.ApiClient, k8s_namespace: str, kubelet_factory: KubeletFactory, tmp_path: Path
) -> None:
    share = tmp_path / "nfs-export"
    share.mkdir()
    kubelet = kubelet_factory(volumes={"nfs.example.test:/export": share})
    script = (
        "import os, pathlib; "
        "pathlib.Path('/mnt/share/out.txt').write_text(os.environ['POD'] + ' ' + os.getcwd()); "
        "pathlib.Path(os.environ['SCRATCH'], 'x').write_text('ok'); print(os.environ['GREETING'])"
    )
    pod_name = unique_name("vol")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [
                {"name": "share", "nfs": {"server": "nfs.example.test", "path": "/export/exp1"}},
                {"name": "scratch", "emptyDir": {}},
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11",
                    "command": ["python3", "-c", script],
                    "workingDir": "/mnt/share/work",
                    "env": [
                        {
                            "name": "POD",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {"name": "WHO", "value": "world"},
                        {"name": "GREETING", "value": "hello $(WHO)"},
                        {"name": "SCRATCH", "value": "/scratch"},
                    ],
                    "volumeMounts": [
                        {"name": "share", "mountPath": "/mnt/share"},
                        {"name": "scratch", "mountPath": "/scratch"},
                    ],
                }
            ],
        },
    }
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(k8s_namespace, pod)
    done, _ = watch_until(
        core.list_namespaced_pod,
        lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        namespace=k8s_namespace,
        field_selector=f"metadata.name={pod_name}",
    )
    log = core.read_namespaced_pod_log(pod_name, k8s_namespace)
    assert done["status"]["phase"] == "Succeeded", log
    assert log == "hello world\n"
    exported = share / "exp1"
    assert (exported / "out.txt").read_text() == f"{pod_name} {exported / 'work'}"
    run = kubelet.run_of(pod_name)
    assert run is not None
    assert (run.sandbox / "volumes" / "scratch" / "x").read_text() == "ok"
    assert os.path.isdir(exported / "work")
