"""One throw-away Kubernetes control plane: etcd + a genuine kube-apiserver on loopback.

The binaries come from ``scripts/k8s-test-env.sh`` (Debian-built kube-apiserver v1.20.2 and etcd
3.4.23, see docs/k8s-testing.md). There is no controller-manager, scheduler or kubelet: objects are
stored, validated, authorised and watched for real; everything that would *act* on them is played
by the test fakes (``fake_operator.py``, ``process_kubelet.py``).

Run ``uv run python -m tests.k8s.cluster`` to get a cluster for manual poking (prints KUBECONFIG).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client, config

from tests.k8s.kubeapi import request

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CRD_FILES = ("kubeflow.org_tfjobs.yaml", "kubeflow.org_pytorchjobs.yaml")
REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_bin_dir() -> Path:
    """Where scripts/k8s-test-env.sh puts the binaries (same default as the script)."""
    root = os.environ.get("KUBESWEEP_K8S_CACHE") or str(Path.home() / ".cache/kubesweep/k8s")
    return Path(root) / "bin"


def binary(name: str, env_var: str) -> Path:
    """A binary's path: ``$<env_var>`` if set, else the cache's bin dir (may not exist)."""
    return Path(os.environ.get(env_var) or cache_bin_dir() / name)


def missing_binaries() -> str | None:
    """Why the cluster cannot start here (a skip reason), or None."""
    missing = [
        str(path)
        for path in (
            binary("etcd", "ETCD_BIN"),
            binary("kube-apiserver", "KUBE_APISERVER_BIN"),
        )
        if not (path.is_file() and os.access(path, os.X_OK))
    ]
    if missing:
        return (
            f"Kubernetes test binaries not installed ({', '.join(missing)}); "
            "build them once with scripts/k8s-test-env.sh (~12 min)"
        )
    return None


def crd_dir() -> Path:
    """The handbook's Kubeflow CRD folder (``$KUBESWEEP_KUBEFLOW_CRDS`` overrides)."""
    override = os.environ.get("KUBESWEEP_KUBEFLOW_CRDS")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "kubeflow-crds"


def missing_crds() -> str | None:
    """Why the Kubeflow CRDs cannot be installed (a skip reason), or None."""
    folder = crd_dir()
    absent = [name for name in CRD_FILES if not (folder / name).is_file()]
    if absent:
        return (
            f"Kubeflow CRDs not found in {folder} ({', '.join(absent)}); "
            "set KUBESWEEP_KUBEFLOW_CRDS"
        )
    return None


def free_port() -> int:
    """A currently free loopback TCP port (tiny race window accepted: tests only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL - only this exact child."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class LocalCluster:
    """etcd + kube-apiserver under ``run_dir``; ``start()`` / ``stop()``, or use as a context."""

    run_dir: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None
    etcd_data: Path | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        # The apiserver self-signs its serving certificate into --cert-dir; it doubles as the CA.
        return self.run_dir / "certs" / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        """Start etcd then the apiserver; return once ``/readyz`` answers. Cleans up on failure."""
        try:
            self._start_etcd()
            self._start_apiserver(timeout)
        except BaseException:
            self.stop()
            raise
        self._write_kubeconfig()

    def stop(self) -> None:
        # The apiserver first: a SIGTERM'd apiserver whose etcd is already gone may hang.
        stop_process(self.apiserver)
        stop_process(self.etcd)
        if self.etcd_data is not None:
            shutil.rmtree(self.etcd_data, ignore_errors=True)
            self.etcd_data = None

    def _start_etcd(self) -> None:
        shm = Path("/dev/shm")  # tmpfs: etcd fsyncs every write, which is slow on real disks
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.etcd_data = Path(tempfile.mkdtemp(prefix="kubesweep-etcd-", dir=base))
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        with open(self.run_dir / "etcd.log", "wb") as log:
            self.etcd = subprocess.Popen(
                [
                    str(binary("etcd", "ETCD_BIN")),
                    "--name=default",
                    f"--data-dir={self.etcd_data}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=default={peer_url}",
                    "--listen-metrics-urls=",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def healthy() -> bool:
            self._check_alive(self.etcd, "etcd.log")
            try:
                with urllib.request.urlopen(f"{client_url}/health", timeout=1) as response:
                    return bool(json.load(response).get("health") == "true")
            except (OSError, ValueError):
                return False

        wait_until(healthy, 20, "etcd /health", interval=0.1)

    def _start_apiserver(self, timeout: float) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_key = self.run_dir / "sa.key"
        sa_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        tokens = self.run_dir / "tokens.csv"
        tokens.write_text(f"{self.token},admin,admin-uid,system:masters\n")
        tokens.chmod(0o600)
        with open(self.run_dir / "apiserver.log", "wb") as log:
            self.apiserver = subprocess.Popen(
                [
                    str(binary("kube-apiserver", "KUBE_APISERVER_BIN")),
                    f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.api_port}",
                    f"--cert-dir={self.run_dir / 'certs'}",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={SA_ISSUER}",
                    f"--service-account-key-file={sa_key}",
                    f"--service-account-signing-key-file={sa_key}",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    # Nothing creates the `default` ServiceAccount without a controller-manager.
                    "--disable-admission-plugins=ServiceAccount",
                    "--allow-privileged=true",
                    "--enable-priority-and-fairness=false",
                    "--v=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def ready() -> bool:
            self._check_alive(self.apiserver, "apiserver.log")
            if not self.ca_file.is_file():
                return False
            request = urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"}
            )
            try:
                context = ssl.create_default_context(cafile=str(self.ca_file))
                with urllib.request.urlopen(request, timeout=2, context=context) as response:
                    return bool(response.status == 200)
            except (OSError, ssl.SSLError, urllib.error.URLError):
                return False

        wait_until(ready, timeout, "kube-apiserver /readyz", interval=0.1)

    def _check_alive(self, process: subprocess.Popen[bytes] | None, log_name: str) -> None:
        if process is not None and process.poll() is not None:
            tail = (self.run_dir / log_name).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{Path(log_name).stem} exited ({process.returncode}):\n{tail}")

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(self.kubeconfig_text("admin", self.token))
        self.kubeconfig.chmod(0o600)

    def kubeconfig_text(self, user: str, token: str, namespace: str = "default") -> str:
        """A kubeconfig for this cluster authenticating with ``token``."""
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": self.server,
                            "certificate-authority": str(self.ca_file),
                        },
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "local",
                        "context": {"cluster": "local", "user": user, "namespace": namespace},
                    }
                ],
                "current-context": "local",
            }
        )

    # -- clients -----------------------------------------------------------------------------
    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        """A client with its OWN configuration (the library's global default is never touched)."""
        cfg = client.Configuration()
        config.load_kube_config(
            config_file=str(kubeconfig or self.kubeconfig), client_configuration=cfg
        )
        return client.ApiClient(cfg)

    def install_crds(self, api: client.ApiClient, folder: Path, timeout: float = 30.0) -> None:
        """Create the Kubeflow CRDs (too big for client-side apply) and wait until served."""
        names = []
        for file_name in CRD_FILES:
            crd = yaml.load((folder / file_name).read_text(), Loader=yaml.CSafeLoader)
            names.append(crd["metadata"]["name"])
            try:
                request(api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            except client.ApiException as error:
                if error.status != 409:
                    raise

        def established() -> bool:
            for name in names:
                crd = request(
                    api, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                )
                conditions = (crd.get("status") or {}).get("conditions") or []
                if not any(
                    c["type"] == "Established" and c["status"] == "True" for c in conditions
                ):
                    return False
            return True

        wait_until(established, timeout, "the Kubeflow CRDs to be Established")

        # Established precedes the discovery/handler refresh by a moment: wait until listing works.
        def served() -> bool:
            try:
                for plural in ("tfjobs", "pytorchjobs"):
                    request(api, "GET", f"/apis/kubeflow.org/v1/namespaces/default/{plural}")
            except client.ApiException as error:
                if error.status == 404:
                    return False
                raise
            return True

        wait_until(served, timeout, "the Kubeflow CRDs to be served")


def main() -> None:
    """Run a cluster in the foreground for manual use (Ctrl-C or SIGTERM stops it cleanly)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Explicit handlers: a background job inherits SIGINT *ignored* from a non-interactive
        # shell, and an unhandled SIGTERM would orphan etcd and the apiserver.
        signal.signal(signum, lambda *_: stop.set())
    run_dir = Path(tempfile.mkdtemp(prefix="kube-"))
    try:
        with LocalCluster(run_dir) as cluster:
            if missing_crds() is None:
                cluster.install_crds(cluster.api_client(), crd_dir())
            print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
            stop.wait()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
