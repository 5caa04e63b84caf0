"""A private, NFSv4.1-only nfs-ganesha on a free loopback port (storage-test-env.md §2).

No rpcbind is needed with ``Protocols = 4``. The server must run as root (the VFS FSAL
uses ``open_by_handle_at``); `unavailable_reason` says why it cannot run here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubesweep.cli.embedded import free_port

BINARY = "ganesha.nfsd"
PSEUDO = "/export"
APT_COMMAND = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
    "--no-install-recommends nfs-ganesha nfs-ganesha-vfs"
)

_CONFIG = """\
NFS_CORE_PARAM {{ Bind_addr = 127.0.0.1; NFS_Port = {port}; Protocols = 4;
                 Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {recov}; }}
NFS_KRB5 {{ Active_krb5 = false; }}
MDCACHE {{ Dir_Chunk = 0; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = {pseudo}; Access_Type = RW;
         Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP;
         Attr_Expiration_Time = 0;
         FSAL {{ Name = VFS; }} CLIENT {{ Clients = 127.0.0.1; Access_Type = RW; }} }}
LOG {{ Default_Log_Level = EVENT; }}
"""


def unavailable_reason() -> str | None:
    """Why ganesha cannot run on this machine, or None when it can."""
    if shutil.which(BINARY) is None:
        return f"nfs-ganesha is not installed ({APT_COMMAND})"
    if os.geteuid() != 0:
        return "nfs-ganesha must run as root (its VFS backend uses open_by_handle_at)"
    return None


@dataclass
class GaneshaServer:
    """One running ganesha; the export's backing folder is ``export_dir``."""

    workdir: Path
    port: int
    process: subprocess.Popen[bytes]

    host = "127.0.0.1"
    pseudo = PSEUDO

    @property
    def export_dir(self) -> Path:
        return self.workdir / "export"

    @property
    def url(self) -> str:
        return f"nfs://{self.host}:{self.port}{self.pseudo}?version=4.1"

    def log_text(self) -> str:
        log = self.workdir / "ganesha.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_ganesha(workdir: Path, timeout: float = 10.0) -> GaneshaServer:
    """Write the config, launch ganesha in the foreground and wait for its TCP port."""
    (workdir / "export").mkdir(parents=True, exist_ok=True)
    (workdir / "recov").mkdir(exist_ok=True)
    port = free_port()
    conf = workdir / "ganesha.conf"
    conf.write_text(
        _CONFIG.format(port=port, recov=workdir / "recov", export=workdir / "export", pseudo=PSEUDO)
    )
    process = subprocess.Popen(
        [
            BINARY,
            "-F",
            "-f",
            str(conf),
            "-L",
            str(workdir / "ganesha.log"),
            "-p",
            str(workdir / "ganesha.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = GaneshaServer(workdir, port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"ganesha did not listen on 127.0.0.1:{port}:\n{server.log_text()}")
