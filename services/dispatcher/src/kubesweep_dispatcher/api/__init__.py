"""The dispatcher's HTTP API (and, later, the web UI)."""

from kubesweep_dispatcher.api.app import create_app

__all__ = ["create_app"]
