"""The trial runtime: the keeper that runs a trial, the SDK it reports through, an ``nni`` shim.

Standard library only, Python 3.8 syntax, relative imports only: the dispatcher copies these
modules to shared storage as the package ``kubesweep_trial`` (see :func:`runtime_files`), and
trial images run them with whatever ``python3`` they have, without installing anything.
"""

from __future__ import annotations

import os

__all__ = ["runtime_files"]

_SHIM_FOLDER = "nni_shim"


def runtime_files() -> dict[str, bytes]:
    """The files of an experiment's runtime folder, keyed by relative POSIX path.

    ``kubesweep_trial/<module>.py`` for every module of this package and ``nni/<module>.py``
    for the NNI shim. With the folder on PYTHONPATH, ``python3 -m kubesweep_trial.keeper``
    runs the keeper and ``import nni`` finds the shim.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    files: dict[str, bytes] = {}
    for folder, package in (("", "kubesweep_trial"), (_SHIM_FOLDER, "nni")):
        source = os.path.join(here, folder)
        for name in sorted(os.listdir(source)):
            if name.endswith(".py"):
                with open(os.path.join(source, name), "rb") as handle:
                    files[f"{package}/{name}"] = handle.read()
    return files
