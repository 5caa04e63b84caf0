"""The kubeflow platform's informers against the real API server: list, watch, 410, reconnect.

No stack here: the informer (``platforms/kubeflow/informer.py``) with the typed client, on
TFJob objects created directly (no operator is needed: only the objects matter).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubesweep_dispatcher.platforms.kubeflow import names
from kubesweep_dispatcher.platforms.kubeflow.informer import Informer
from tests.k8s.cluster import wait_until
from tests.k8s.conftest import Cluster
from tests.k8s.kubeapi import request

pytestmark = pytest.mark.k8s
GROUP, VERSION = "kubeflow.org", "v1"


def _jobs_path(namespace: str, name: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/tfjobs"
    return f"{path}/{name}" if name else path


def _create(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TFJob",
        "metadata": {"name": name, "labels": names.labels("e1", name, 1)},
        "spec": {
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": 1,
                    "template": {"spec": {"containers": [{"name": "tensorflow", "image": "x"}]}},
                }
            }
        },
    }
    created: dict[str, Any] = request(api, "POST", _jobs_path(namespace), body)
    return created


def _touch(api: client.ApiClient, namespace: str, name: str, value: str) -> None:
    request(
        api,
        "PATCH",
        _jobs_path(namespace, name),
        {"metadata": {"annotations": {"touched": value}}},
        content_type="application/merge-patch+json",
    )


def _informer(api: client.ApiClient, namespace: str, **options: Any) -> Informer:
    call = functools.partial(
        client.CustomObjectsApi(api).list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        "tfjobs",
    )
    return Informer("test tfjobs", call, selector=names.selector(), **options)


def _touched(informer: Informer, name: str) -> str | None:
    job = informer.get(name)
    if job is None:
        return None
    value = (job["metadata"].get("annotations") or {}).get("touched")
    return None if value is None else str(value)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.seen.append((obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def names(self) -> set[str]:
        with self.lock:
            return {name for name, _ in self.seen}


def test_informer_lists_then_follows_changes(k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    _create(k8s_api, k8s_namespace, "before")
    seen = Recorder()
    informer = _informer(k8s_api, k8s_namespace, notify=seen)
    informer.start()
    try:
        assert informer.synced.wait(30)
        assert seen.names() == {"before"}
        _create(k8s_api, k8s_namespace, "after")
        _touch(k8s_api, k8s_namespace, "before", "1")
        wait_until(lambda: "after" in seen.names(), 10, "the new job's event")
        wait_until(lambda: _touched(informer, "before") == "1", 10, "the change in the cache")
        request(k8s_api, "DELETE", _jobs_path(k8s_namespace, "before"))
        wait_until(lambda: informer.get("before") is None, 10, "the deletion")
        assert [job["metadata"]["name"] for job in informer.items()] == ["after"]
        assert (informer.lists, informer.gone, informer.errors) == (1, 0, 0)
    finally:
        informer.stop()
    assert not informer.is_alive()


def test_informer_relists_on_410_gone_for_a_too_old_resource_version(
    k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    _create(k8s_api, k8s_namespace, "old")
    _create(k8s_api, k8s_namespace, "busy")
    for n in range(3):
        _touch(k8s_api, k8s_namespace, "busy", str(n))
    request(k8s_api, "DELETE", _jobs_path(k8s_namespace, "old"))
    _create(k8s_api, k8s_namespace, "new")
    # A resourceVersion from before the API server's watch window for tfjobs (revision 1 is
    # older than the window, which starts at the CRD's installation; a dispatcher resuming
    # from a long-saved version sends the like). 1.20 keeps the window growing while its
    # events are under 75 s old, so rolling it over with writes would take minutes; the
    # answer is the same: the watch ends with an ERROR event, code 410 Gone.
    old = "1"
    seen = Recorder()
    informer = _informer(k8s_api, k8s_namespace, notify=seen, resume_from=old)
    informer.start()
    try:
        assert informer.synced.wait(30)
        assert informer.gone == 1, (informer.gone, informer.errors, informer.lists)
        assert informer.lists == 1
        assert {job["metadata"]["name"] for job in informer.items()} == {"busy", "new"}
        busy = informer.get("busy")
        assert busy is not None
        assert busy["metadata"]["annotations"]["touched"] == "2"
        # And it follows on from the fresh list.
        _touch(k8s_api, k8s_namespace, "new", "x")
        wait_until(lambda: _touched(informer, "new") == "x", 10, "the change after the re-list")
    finally:
        informer.stop()


class CuttableProxy:
    """A loopback TCP relay to the API server whose connections can be cut (a network fault
    the informer must survive: it reconnects, re-lists and carries on)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                incoming, _ = self.server.accept()
            except OSError:
                return
            outgoing = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [incoming, outgoing]
            for a, b in ((incoming, outgoing), (outgoing, incoming)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.server.close()
        self.cut()


@pytest.fixture
def proxy(k8s_api: client.ApiClient) -> Iterator[CuttableProxy]:
    port = int(k8s_api.configuration.host.rsplit(":", 1)[1])
    relay = CuttableProxy(port)
    yield relay
    relay.close()


def test_informer_reconnects_after_the_connection_drops(
    k8s_cluster: Cluster,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    proxy: CuttableProxy,
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        k8s_cluster.kubeconfig.read_text().replace(
            k8s_cluster.server, f"https://127.0.0.1:{proxy.port}"
        )
    )
    via_proxy = k8s_cluster.local.api_client(kubeconfig)
    _create(k8s_api, k8s_namespace, "first")
    seen = Recorder()
    informer = _informer(via_proxy, k8s_namespace, notify=seen, backoff_s=0.2)
    informer.start()
    try:
        assert informer.synced.wait(30)
        _touch(k8s_api, k8s_namespace, "first", "live")
        wait_until(lambda: _touched(informer, "first") == "live", 10, "the watch to be live")
        proxy.cut()
        # Made while the watch is down: the reconnect's re-list must bring it.
        _create(k8s_api, k8s_namespace, "during")
        wait_until(lambda: informer.get("during") is not None, 20, "the job made during the cut")
        assert informer.is_alive()
        # A new connection: the watch resumed from its last resourceVersion (a stream cut
        # cleanly) or, after an error, a fresh list.
        assert informer.watches >= 2
        assert informer.errors + 1 == informer.lists
    finally:
        informer.stop()
