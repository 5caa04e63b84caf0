"""A loopback "process kubelet" (plus a one-node scheduler) for one namespace.

It registers a Node whose kubelet endpoint is a small HTTPS server on 127.0.0.1, binds the
namespace's pending pods to it (``pods/binding``, as the scheduler would) and runs every container
as a LOCAL PROCESS in its own process group: ``command`` + ``args`` with ``$(VAR)`` expansion,
``env`` (values, ``fieldRef`` for metadata/spec/status fields, ``secretKeyRef``,
``configMapKeyRef``), ``envFrom``, ``workingDir``, init containers first. The pod's phase moves
Pending -> Running -> Succeeded/Failed through ``pods/status`` with realistic ``conditions`` and
``containerStatuses``. Logs (stdout+stderr, like the container runtime) are served on
``/containerLogs/{ns}/{pod}/{container}``, so the real ``GET .../pods/{pod}/log`` path of the
apiserver works (``tailLines``, ``limitBytes`` and ``follow`` honoured).

Volumes have no mounts: every ``volumeMounts[].mountPath`` (``+ subPath``) is mapped to a local
directory and the mount path is REWRITTEN to it in ``command``, ``args``, env values and
``workingDir``. ``emptyDir`` -> a per-pod temp dir; ``secret``/``configMap`` -> files written from
the API objects; ``hostPath`` -> the host path; ``nfs``, ``azureFile`` and ``persistentVolumeClaim``
-> the test-provided ``volumes`` mapping, looked up by volume name, then ``server:path`` /
``server`` (nfs; a ``server:/prefix`` key also matches deeper paths), ``shareName`` (azureFile),
``claimName`` (PVC). An unmapped volume leaves the pod Pending (``ContainerCreating``, event
``FailedMount``).

Deletion is honoured like a kubelet: a graceful delete (deletionTimestamp set) SIGTERMs the
process group, SIGKILLs it after the grace period (capped by ``kill_grace``), then removes the pod
(grace 0). The fake operator deletes a job's pods when the job is deleted (no GC in the bare
apiserver), so deleting a job kills its processes too.

Images prefixed ``unschedulable/`` are never bound (condition ``PodScheduled=False``, reason
``Unschedulable``, event ``FailedScheduling``); ``imagepullbackoff/`` pods are bound but their
containers stay ``waiting`` with reason ``ImagePullBackOff`` (event ``BackOff``). Any other image
name is ignored: the command runs on the host with the host's ``PATH``.

Not emulated: restarts (every restartPolicy behaves as ``Never``), probes, resource limits,
``securityContext``, ``readOnly`` mounts, image entrypoints (a container without ``command`` fails
with ``CreateContainerConfigError``), exec/attach/port-forward.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from tests.k8s.kubeapi import Watcher, request

log = logging.getLogger(__name__)

UNSCHEDULABLE = "unschedulable/"
IMAGE_PULL_BACKOFF = "imagepullbackoff/"
TERMINAL = ("Succeeded", "Failed")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ConfigError(Exception):
    """The pod cannot start (maps to CreateContainerConfigError / FailedMount)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class PodRun:
    """One pod's processes on this kubelet."""

    namespace: str
    name: str
    uid: str
    sandbox: Path
    logs: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pid(self, container: str) -> int:
        return self.processes[container].pid


class ProcessKubelet:
    """Runs the pods of ``namespace`` as local processes until ``stop()``."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        workdir: Path,
        *,
        volumes: Mapping[str, str | os.PathLike[str]] | None = None,
        node_name: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        kill_grace: float = 5.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.workdir = Path(workdir)
        self.volumes = {key: Path(value) for key, value in (volumes or {}).items()}
        self.node_name = node_name or f"kubelet-{namespace}"
        self.extra_env = dict(extra_env or {})
        self.kill_grace = kill_grace
        self._runs: dict[tuple[str, str], PodRun] = {}
        self._by_uid: dict[str, PodRun] = {}
        self._handled: set[str] = set()  # uids already scheduled/reported/being deleted
        self._lock = threading.Lock()
        self._errors: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._watcher = Watcher(
            api, f"/api/v1/namespaces/{namespace}/pods", self._on_pod, f"kubelet-{namespace}"
        )

    @property
    def errors(self) -> list[str]:
        return self._errors + self._watcher.errors

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ProcessKubelet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = self._start_log_server()
        self._register_node(port)
        self._watcher.start()
        self._watcher.synced.wait(10)
        return self

    def stop(self) -> None:
        self._watcher.stop()
        with self._lock:
            runs = list(self._by_uid.values())
        for run in runs:
            self._kill(run)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with contextlib.suppress(client.ApiException):
            request(self.api, "DELETE", f"/api/v1/nodes/{self.node_name}")

    def run_of(self, pod: str) -> PodRun | None:
        """The local run of ``pod`` (its processes, log files), if it was started here."""
        with self._lock:
            return self._runs.get((self.namespace, pod))

    # -- node + log server -------------------------------------------------------------------
    def _start_log_server(self) -> int:
        cert, key = self.workdir / "kubelet.crt", self.workdir / "kubelet.key"
        _self_signed(cert, key)
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kubelet._serve_log(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("kubelet log server: " + format, *args)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="kubelet-logs", daemon=True
        ).start()
        self._server = server
        port: int = server.server_address[1]
        return port

    def _register_node(self, port: int) -> None:
        try:
            request(
                self.api,
                "POST",
                "/api/v1/nodes",
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name}},
            )
        except client.ApiException as error:
            if error.status != 409:
                raise
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": "8Gi", "pods": "110"}
        request(
            self.api,
            "PATCH",
            f"/api/v1/nodes/{self.node_name}/status",
            {
                "status": {
                    # Both address types on loopback: whichever the apiserver prefers stays local.
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": "127.0.0.1"},
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "process kubelet is ready",
                            "lastHeartbeatTime": now(),
                            "lastTransitionTime": now(),
                        }
                    ],
                }
            },
            content_type="application/merge-patch+json",
        )

    def _serve_log(self, handler: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        parts = url.path.strip("/").split("/")
        query = urllib.parse.parse_qs(url.query)
        run = None
        if len(parts) == 4 and parts[0] == "containerLogs":
            with self._lock:
                run = self._runs.get((parts[1], parts[2]))
        path = run.logs.get(parts[3]) if run else None
        if run is None or path is None or not path.exists():
            message = f"container {parts[-1]!r} is not running here (process kubelet)\n".encode()
            handler.send_response(404 if run is None else 400)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(message)))
            handler.end_headers()
            handler.wfile.write(message)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        if query.get("follow", ["false"])[0] != "true":
            body = _tail(path.read_bytes(), query)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        # follow: stream (HTTP/1.0, no length: the end of the body is the connection close)
        handler.end_headers()
        with open(path, "rb") as stream:
            handler.wfile.write(_tail(stream.read(), query))
            while True:
                finished = run.done.is_set()  # read BEFORE draining, so no output is lost
                chunk = stream.read()
                if chunk:
                    handler.wfile.write(chunk)
                    handler.wfile.flush()
                elif finished:
                    return
                else:
                    run.done.wait(0.1)  # output arrives via the file: no event to wait on

    # -- pod events --------------------------------------------------------------------------
    def _on_pod(self, event: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        phase = (pod.get("status") or {}).get("phase")
        if event == "DELETED":
            run = self._by_uid.get(uid)
            if run is not None:
                threading.Thread(target=self._kill, args=(run,), daemon=True).start()
            return
        node = spec.get("nodeName")
        if meta.get("deletionTimestamp"):
            if node == self.node_name and self._claim(f"delete-{uid}"):
                threading.Thread(target=self._delete, args=(pod,), daemon=True).start()
            return
        if phase in TERMINAL:
            return
        if not node:
            if self._claim(f"schedule-{uid}"):
                self._schedule(pod)
            return
        if node == self.node_name and self._claim(f"run-{uid}"):
            # Registered here, before the thread starts, so a deletion arriving at any later
            # moment finds the run and cancels it (no process can then start).
            sandbox = Path(tempfile.mkdtemp(prefix=f"{meta['name']}-", dir=self.workdir))
            run = PodRun(meta["namespace"], meta["name"], uid, sandbox)
            with self._lock:
                self._runs[(run.namespace, run.name)] = run
                self._by_uid[uid] = run
            threading.Thread(
                target=self._run_guarded, args=(pod, run), name=f"pod-{meta['name']}", daemon=True
            ).start()

    def _claim(self, key: str) -> bool:
        with self._lock:
            if key in self._handled:
                return False
            self._handled.add(key)
            return True

    def _images(self, pod: dict[str, Any]) -> list[str]:
        spec = pod["spec"]
        return [c.get("image") or "" for c in spec.get("initContainers", []) + spec["containers"]]

    def _schedule(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if any(image.startswith(UNSCHEDULABLE) for image in self._images(pod)):
            message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity."
            self._patch_status(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastProbeTime": None,
                            "lastTransitionTime": now(),
                        }
                    ],
                },
            )
            self._event(pod, "Warning", "FailedScheduling", message, component="default-scheduler")
            return
        try:
            request(
                self.api,
                "POST",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": meta["name"], "uid": meta["uid"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
                },
            )
        except client.ApiException as error:
            if error.status not in (404, 409):  # deleted meanwhile / already bound
                raise
        self._event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node_name}",
            component="default-scheduler",
        )

    # -- running a pod -----------------------------------------------------------------------
    def _run_guarded(self, pod: dict[str, Any], run: PodRun) -> None:
        try:
            self._run(pod, run)
        except Exception as error:  # reported by the fixture; the pod is left as it is
            log.exception("process kubelet: pod %s failed", pod["metadata"]["name"])
            self._errors.append(f"{pod['metadata']['name']}: {type(error).__name__}: {error}")

    def _run(self, pod: dict[str, Any], run: PodRun) -> None:
        spec = pod["spec"]
        containers: list[dict[str, Any]] = spec["containers"]
        init_containers: list[dict[str, Any]] = spec.get("initContainers") or []
        started = now()

        bad_images = [i for i in self._images(pod) if i.startswith(IMAGE_PULL_BACKOFF)]
        if bad_images:
            message = f'Back-off pulling image "{bad_images[0]}"'
            self._report_waiting(pod, containers, "ImagePullBackOff", message, started)
            self._event(pod, "Warning", "BackOff", message)
            return
        try:
            mounts = self._volume_dirs(pod, run)
            commands = {
                c["name"]: self._command(pod, c, mounts, run)
                for c in [*init_containers, *containers]
            }
        except ConfigError as error:
            waiting = "ContainerCreating" if error.reason == "FailedMount" else error.reason
            self._report_waiting(pod, containers, waiting, str(error), started)
            self._event(pod, "Warning", error.reason, str(error))
            return

        init_states: list[dict[str, Any]] = []
        for container in init_containers:
            init = self._start(run, [container], commands)
            if init is None:
                return
            code, state = self._wait(init)[0]
            init_states.append(_terminated_status(container, state))
            if run.cancelled.is_set():
                return
            if code != 0:
                self._finish(pod, "Failed", containers, [], init_states, started)
                return
        # Running is reported only once the processes exist (as a kubelet does after the runtime
        # started the containers), so a test that sees Running can find them.
        started_containers = self._start(run, containers, commands)
        if started_containers is None:
            return
        running = {"running": {"startedAt": now()}}
        self._patch_status(
            pod,
            {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": started,
                "conditions": _conditions(ready=True, started=started),
                "initContainerStatuses": init_states or None,
                "containerStatuses": [
                    _container_status(c, running, ready=True) for c in containers
                ],
            },
        )
        results = self._wait(started_containers)
        if run.cancelled.is_set():
            return
        phase = "Succeeded" if all(code == 0 for code, _ in results) else "Failed"
        self._finish(pod, phase, containers, [s for _, s in results], init_states, started)

    def _start(
        self,
        run: PodRun,
        containers: list[dict[str, Any]],
        commands: dict[str, tuple[list[str], dict[str, str], Path]],
    ) -> list[tuple[str, subprocess.Popen[bytes] | None, str]] | None:
        """Start ``containers``: (name, process or None if it could not be exec'd, start time)
        each, or None when the pod is being deleted."""
        started: list[tuple[str, subprocess.Popen[bytes] | None, str]] = []
        with run.lock:
            if run.cancelled.is_set():
                return None
            for container in containers:
                name = container["name"]
                argv, env, cwd = commands[name]
                log_path = run.sandbox / "logs" / f"{name}.log"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                run.logs[name] = log_path
                with open(log_path, "ab") as log_file:
                    try:
                        process = subprocess.Popen(
                            argv,
                            env=env,
                            cwd=cwd,
                            stdin=subprocess.DEVNULL,
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,  # its own process group: killed as a whole
                        )
                    except OSError as error:
                        log_file.write(
                            f"process kubelet: cannot start {argv!r}: {error}\n".encode()
                        )
                        started.append((name, None, now()))
                        continue
                run.processes[name] = process
                started.append((name, process, now()))
        return started

    @staticmethod
    def _wait(
        started: list[tuple[str, subprocess.Popen[bytes] | None, str]],
    ) -> list[tuple[int, dict[str, Any]]]:
        """Wait for every started container: (exit code, terminated state) each."""
        results = []
        for _, maybe_process, started_at in started:
            # 127 like a shell's "command not found" when the executable could not be started
            code = maybe_process.wait() if maybe_process is not None else 127
            reason = "Completed" if code == 0 else "Error"
            results.append(
                (
                    code,
                    {
                        "terminated": {
                            "exitCode": code if code >= 0 else 128 - code,
                            "reason": reason,
                            "startedAt": started_at,
                            "finishedAt": now(),
                        }
                    },
                )
            )
        return results

    def _finish(
        self,
        pod: dict[str, Any],
        phase: str,
        containers: list[dict[str, Any]],
        states: list[dict[str, Any]],
        init_states: list[dict[str, Any]],
        started: str,
    ) -> None:
        run = self._by_uid.get(pod["metadata"]["uid"])
        statuses = [
            _container_status(c, s or {"waiting": {"reason": "PodInitializing"}}, ready=False)
            for c, s in zip(containers, states or [{}] * len(containers), strict=True)
        ]
        self._patch_status(
            pod,
            {
                "phase": phase,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "startTime": started,
                "conditions": _conditions(ready=False, started=started, reason="PodCompleted"),
                "initContainerStatuses": init_states or None,
                "containerStatuses": statuses,
            },
        )
        if run is not None:
            run.done.set()

    def _report_waiting(
        self,
        pod: dict[str, Any],
        containers: list[dict[str, Any]],
        reason: str,
        message: str,
        started: str,
    ) -> None:
        waiting = {"waiting": {"reason": reason, "message": message}}
        self._patch_status(
            pod,
            {
                "phase": "Pending",
                "hostIP": "127.0.0.1",
                "startTime": started,
                "conditions": _conditions(
                    ready=False, started=started, reason="ContainersNotReady"
                ),
                "containerStatuses": [
                    _container_status(c, waiting, ready=False) for c in containers
                ],
            },
        )

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            request(
                self.api,
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"metadata": {"uid": meta["uid"]}, "status": status},
                content_type="application/merge-patch+json",
            )
        except client.ApiException as error:
            if error.status not in (404, 409):  # deleted (or replaced) under our feet
                raise

    def _event(
        self,
        pod: dict[str, Any],
        kind: str,
        reason: str,
        message: str,
        component: str = "kubelet",
    ) -> None:
        meta = pod["metadata"]
        stamp = now()
        with contextlib.suppress(client.ApiException):
            request(
                self.api,
                "POST",
                f"/api/v1/namespaces/{meta['namespace']}/events",
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"generateName": f"{meta['name']}."},
                    "involvedObject": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                    "type": kind,
                    "reason": reason,
                    "message": message,
                    "source": {"component": component, "host": self.node_name},
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "count": 1,
                },
            )

    # -- eviction ----------------------------------------------------------------------------
    def evict(self, pod_name: str, message: str = "The node was low on resource: memory.") -> None:
        """Evict a running pod like a kubelet under node pressure: its processes are killed and
        the pod object stays, ``Failed`` with reason ``Evicted`` (what the training operator
        then sees as a failed replica)."""
        run = self.run_of(pod_name)
        if run is None:
            raise KeyError(f"pod {pod_name} does not run on {self.node_name}")
        pod = request(self.api, "GET", f"/api/v1/namespaces/{self.namespace}/pods/{pod_name}")
        self._kill(run)
        killed = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now()}}
        started = (pod.get("status") or {}).get("startTime") or now()
        self._patch_status(
            pod,
            {
                "phase": "Failed",
                "reason": "Evicted",
                "message": message,
                "conditions": _conditions(ready=False, started=started, reason="PodCompleted"),
                "containerStatuses": [
                    _container_status(c, killed, ready=False) for c in pod["spec"]["containers"]
                ],
            },
        )
        self._event(pod, "Warning", "Evicted", message)

    # -- deletion ----------------------------------------------------------------------------
    def _kill(self, run: PodRun) -> None:
        with run.lock:  # no container can start after this
            run.cancelled.set()
        alive = [p for p in run.processes.values() if p.poll() is None]
        for process in alive:
            # Only while the group leader is unreaped is its pid (= pgid) guaranteed to be ours.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace
        for process in alive:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        run.done.set()

    def _delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        run = self._by_uid.get(meta["uid"])
        if run is not None:
            self._kill(run)
        try:  # the kubelet's final say: the containers are gone, remove the object now
            request(
                self.api,
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
            )
        except client.ApiException as error:
            if error.status not in (404, 409):
                raise
        if run is not None:
            shutil.rmtree(run.sandbox / "volumes", ignore_errors=True)

    # -- volumes, env and command ------------------------------------------------------------
    def _volume_dirs(self, pod: dict[str, Any], run: PodRun) -> dict[str, Path]:
        dirs = {}
        for volume in pod["spec"].get("volumes") or []:
            dirs[volume["name"]] = self._volume_dir(pod, volume, run)
        return dirs

    def _mapped(self, *keys: str) -> Path | None:
        for key in keys:
            if key in self.volumes:
                return self.volumes[key]
        return None

    def _volume_dir(self, pod: dict[str, Any], volume: dict[str, Any], run: PodRun) -> Path:
        name = volume["name"]
        if name in self.volumes:
            return self.volumes[name]
        local = run.sandbox / "volumes" / name
        found: Path | None = None
        if "emptyDir" in volume:
            local.mkdir(parents=True, exist_ok=True)
            found = local
        elif "hostPath" in volume:
            found = Path(volume["hostPath"]["path"])
        elif "nfs" in volume:
            server, path = volume["nfs"]["server"], volume["nfs"].get("path", "/")
            found = self._mapped(f"{server}:{path}", server) or self._nfs_prefix(server, path)
        elif "azureFile" in volume:
            share = volume["azureFile"]["shareName"]
            found = self._mapped(f"{volume['azureFile'].get('secretName')}/{share}", share)
        elif "persistentVolumeClaim" in volume:
            found = self._mapped(volume["persistentVolumeClaim"]["claimName"])
        elif "secret" in volume or "configMap" in volume:
            found = self._materialise(pod, volume, local)
        if found is None:
            raise ConfigError(
                "FailedMount",
                f'MountVolume.SetUp failed for volume "{name}": the process kubelet has no local '
                f"directory for it (pass volumes={{{name!r}: <dir>}})",
            )
        return found

    def _nfs_prefix(self, server: str, path: str) -> Path | None:
        best: tuple[int, Path] | None = None
        for key, local in self.volumes.items():
            prefix = f"{server}:"
            if not key.startswith(prefix):
                continue
            root = key[len(prefix) :].rstrip("/") or ""
            matches = path == root or path.startswith(root + "/")
            if matches and (best is None or len(root) > best[0]):
                best = (len(root), local / path[len(root) :].lstrip("/"))
        return best[1] if best else None

    def _materialise(self, pod: dict[str, Any], volume: dict[str, Any], local: Path) -> Path:
        is_secret = "secret" in volume
        source = volume["secret"] if is_secret else volume["configMap"]
        name = source.get("secretName") if is_secret else source.get("name")
        kind = "secrets" if is_secret else "configmaps"
        try:
            obj = request(
                self.api, "GET", f"/api/v1/namespaces/{pod['metadata']['namespace']}/{kind}/{name}"
            )
        except client.ApiException as error:
            if error.status == 404 and source.get("optional"):
                obj = {}
            else:
                raise ConfigError(
                    "FailedMount",
                    f'MountVolume.SetUp failed for volume "{volume["name"]}": {kind[:-1]} '
                    f'"{name}" not found',
                ) from error
        data = {
            key: base64.b64decode(value) if is_secret else value.encode()
            for key, value in (obj.get("data") or {}).items()
        }
        local.mkdir(parents=True, exist_ok=True)
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            if item["key"] in data:
                target = local / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[item["key"]])
        return local

    def _command(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        volume_dirs: dict[str, Path],
        run: PodRun,
    ) -> tuple[list[str], dict[str, str], Path]:
        mounts: list[tuple[str, Path]] = []
        for mount in container.get("volumeMounts") or []:
            local = volume_dirs[mount["name"]] / mount.get("subPath", "")
            local.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"].rstrip("/") or "/", local))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)

        def translate(text: str) -> str:
            for mount_path, local in mounts:
                pattern = r"(?<![\w./-])" + re.escape(mount_path) + r"(?=/|$|[^\w.-])"
                text = re.sub(pattern, _literal(str(local)), text)
            return text

        home = run.sandbox / "home"
        home.mkdir(exist_ok=True)
        api_url = urllib.parse.urlsplit(self.api.configuration.host)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": api_url.hostname or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(api_url.port or 443),
            **self.extra_env,
        }
        for source in container.get("envFrom") or []:
            env.update(self._env_from(pod, source))
        for var in container.get("env") or []:
            if "valueFrom" in var:
                value = self._value_from(pod, var["name"], var["valueFrom"])
                if value is None:
                    continue
            else:
                value = _expand(var.get("value", ""), env)
            env[var["name"]] = translate(value)
        argv = [
            translate(_expand(arg, env))
            for arg in (container.get("command") or []) + (container.get("args") or [])
        ]
        if not container.get("command"):
            raise ConfigError(
                "CreateContainerConfigError",
                f"container {container['name']!r} has no command: the process kubelet cannot "
                "know an image's entrypoint",
            )
        working_dir = container.get("workingDir")
        if working_dir:
            translated = translate(working_dir)
            cwd = Path(translated) if translated != working_dir else None
            # An unmapped absolute workingDir lives in the pod's sandbox, never on the host.
            cwd = cwd or run.sandbox / "rootfs" / working_dir.lstrip("/")
        else:
            cwd = run.sandbox / "rootfs"
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, env, cwd

    def _value_from(self, pod: dict[str, Any], name: str, source: dict[str, Any]) -> str | None:
        meta = pod["metadata"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            simple: dict[str, str] = {
                "metadata.name": meta["name"],
                "metadata.namespace": meta["namespace"],
                "metadata.uid": meta["uid"],
                "spec.nodeName": self.node_name,
                "spec.serviceAccountName": str(pod["spec"].get("serviceAccountName", "default")),
                "status.hostIP": "127.0.0.1",
                "status.podIP": "127.0.0.1",
                "status.podIPs": "127.0.0.1",
            }
            if path in simple:
                return simple[path]
            match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
            if match:
                return str((meta.get(match[1]) or {}).get(match[2], ""))
            raise ConfigError(
                "CreateContainerConfigError", f"env {name}: fieldRef {path!r} not supported here"
            )
        for key, kind in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in source:
                ref = source[key]
                data = self._object_data(pod, kind, ref["name"], bool(ref.get("optional")))
                if ref["key"] in data:
                    return str(data[ref["key"]])
                if ref.get("optional"):
                    return None
                raise ConfigError(
                    "CreateContainerConfigError",
                    f"couldn't find key {ref['key']} in {kind[:-1]} "
                    f"{meta['namespace']}/{ref['name']}",
                )
        raise ConfigError(
            "CreateContainerConfigError", f"env {name}: valueFrom {sorted(source)} not supported"
        )

    def _env_from(self, pod: dict[str, Any], source: dict[str, Any]) -> dict[str, str]:
        prefix = source.get("prefix", "")
        for key, kind in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            if key in source:
                ref = source[key]
                data = self._object_data(pod, kind, ref["name"], bool(ref.get("optional")))
                return {prefix + k: v for k, v in data.items()}
        return {}

    def _object_data(
        self, pod: dict[str, Any], kind: str, name: str, optional: bool
    ) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        try:
            obj = request(self.api, "GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except client.ApiException as error:
            if error.status == 404 and optional:
                return {}
            raise ConfigError(
                "CreateContainerConfigError", f'{kind[:-1]} "{name}" not found'
            ) from error
        data = obj.get("data") or {}
        if kind == "secrets":
            return {k: base64.b64decode(v).decode() for k, v in data.items()}
        return dict(data)


# -- helpers ---------------------------------------------------------------------------------
def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names expand, ``$$`` escapes, others stay."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    """A replacement function for re.sub: the value verbatim (no backslash-escape parsing)."""
    return lambda _: value


def _tail(data: bytes, query: Mapping[str, list[str]]) -> bytes:
    if "tailLines" in query:
        lines = data.splitlines(keepends=True)
        count = int(query["tailLines"][0])
        data = b"".join(lines[-count:]) if count else b""
    if "limitBytes" in query:
        data = data[: int(query["limitBytes"][0])]
    return data


def _conditions(*, ready: bool, started: str, reason: str | None = None) -> list[dict[str, Any]]:
    def condition(ctype: str, status: bool, why: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": ctype,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": started,
        }
        if why and not status:
            entry["reason"] = why
        return entry

    return [
        condition("Initialized", True),
        condition("Ready", ready, reason),
        condition("ContainersReady", ready, reason),
        condition("PodScheduled", True),
    ]


def _container_status(
    container: dict[str, Any], state: dict[str, Any], *, ready: bool
) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def _terminated_status(container: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return _container_status(container, state, ready=False)


def _self_signed(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
