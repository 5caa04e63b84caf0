"""The storage fakes' fixtures, for every module of this tier (one ganesha per session)."""

from tests.fakes.fixtures import azure_env, nfs_export, nfs_server  # noqa: F401
