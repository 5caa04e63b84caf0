"""Storage backends: where code snapshots, parameters and trial outputs live."""

from kubesweep_dispatcher.storage.base import FileInfo, StorageBackend, check_relpath
from kubesweep_dispatcher.storage.registry import create_storage, register_storage, restore_storage

__all__ = [
    "FileInfo",
    "StorageBackend",
    "check_relpath",
    "create_storage",
    "register_storage",
    "restore_storage",
]
