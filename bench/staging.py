"""Staging cost per storage backend: a 200-file / 50 MB code tree, then per-trial writes.

Run: ``cd /work/main && uv run python bench/staging.py [--repeats 5] [--trials 20]``

Backends: ``mounted`` (a temp folder), ``nfs`` (nfs-rs against a loopback nfs-ganesha;
skipped unless ganesha is installed and this runs as root) and ``azure`` (the real SDKs
against the local Key Vault and Azure Files fakes from ``tests/fakes``). "stage" is
`stage_experiment` (unpack, manifest, runtime, atomic publish); "per trial" is writing
``parameter.cfg`` plus creating the trial's output folder. "mirror" is what a local trial
on remote storage adds once per experiment and host: copying code and runtime to local
disk, checked against the manifest (`CodeCache.ensure`; later trials find the copy).
Medians over the repeats. Targets: per trial <= 50 ms mounted, <= 250 ms nfs/azure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.azure_files import DEV_KEY, start_files
from tests.fakes.ganesha import start_ganesha, unavailable_reason
from tests.fakes.keyvault import FakeCredential, start_keyvault

from kubesweep.codearchive import Limits, pack
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.platforms.codecache import CodeCache
from kubesweep_dispatcher.staging import stage_experiment, write_parameters
from kubesweep_dispatcher.storage import StorageBackend, create_storage

TARGET_MS = {"mounted": 50.0, "nfs": 250.0, "azure": 250.0}


def make_tree(root: Path) -> None:
    """200 files, 50 MB: 196 small sources in 20 folders plus four 12.5 MB data files."""
    for i in range(196):
        path = root / f"pkg{i % 20}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(2048))
    for i in range(4):
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / f"shard{i}.bin").write_bytes(os.urandom(12_500_000))


@contextmanager
def backends(work: Path) -> Iterator[dict[str, StorageBackend | str]]:
    found: dict[str, StorageBackend | str] = {
        "mounted": create_storage("mounted", root=work / "mounted")
    }
    reason = unavailable_reason()
    ganesha = None if reason else start_ganesha(work / "ganesha")
    if ganesha is None:
        found["nfs"] = f"skipped: {reason}"
    else:
        found["nfs"] = create_storage(
            "nfs", server=ganesha.host, export=ganesha.pseudo, port=ganesha.port
        )
    vault = start_keyvault(work / "vault", {"key": DEV_KEY})
    files = start_files(work / "files")
    found["azure"] = create_storage(
        "azureStorage",
        account_name=files.account,
        share="bench",
        key_vault_name="vault",
        key_vault_key="key",
        account_url=files.account_url,
        vault_url=vault.url,
        credential=FakeCredential(),
        ca_bundle=str(vault.cert),
    )
    try:
        yield found
    finally:
        files.stop()
        vault.stop()
        if ganesha is not None:
            ganesha.stop()


def per_trial(storage: StorageBackend, exp_id: str, trial_id: str) -> None:
    write_parameters(storage, exp_id, trial_id, 0, {"lr": 0.01, "layers": 3})
    storage.make_dirs(layout.output(exp_id, trial_id, "worker", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    limits = Limits(max_files=2000, max_bytes=300 * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="kubesweep-bench-") as temp:
        work = Path(temp)
        make_tree(work / "tree")
        archive, summary = pack(work / "tree", limits)
        rows = []
        with backends(work) as found:
            for name, storage in found.items():
                if isinstance(storage, str):
                    rows.append(f"| {name} | {storage} | | | | |")
                    continue
                storage.check()  # connects, reads the key: not part of the staging cost
                stage_s, trial_s, mirror_s = [], [], []
                for rep in range(args.repeats):
                    exp_id = f"bench{rep}"
                    start = time.perf_counter()
                    stage_experiment(storage, exp_id, archive, limits)
                    stage_s.append(time.perf_counter() - start)
                    for t in range(args.trials):
                        start = time.perf_counter()
                        per_trial(storage, exp_id, f"t{t}")
                        trial_s.append(time.perf_counter() - start)
                    if storage.local_path(layout.code(exp_id)) is None:
                        start = time.perf_counter()
                        CodeCache(work / "cache" / name).ensure(storage, exp_id)
                        mirror_s.append(time.perf_counter() - start)
                    storage.delete_tree(layout.experiment(exp_id))
                trial_ms = statistics.median(trial_s) * 1000
                verdict = "ok" if trial_ms <= TARGET_MS[name] else "OVER"
                mirror = f"{statistics.median(mirror_s):.2f} s" if mirror_s else "in place"
                rows.append(
                    f"| {name} | {statistics.median(stage_s):.2f} s | {trial_ms:.1f} ms | "
                    f"{max(trial_s) * 1000:.1f} ms | <= {TARGET_MS[name]:.0f} ms {verdict} | "
                    f"{mirror} |"
                )
    print(
        f"Tree: {summary.files} files, {summary.bytes / 1e6:.1f} MB; "
        f"{args.repeats} repeats, {args.trials} trials each.\n"
    )
    print(
        "| backend | stage (median) | per trial (median) | per trial (max) | target "
        "| local trials: mirror |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
