"""Platforms: where and how a trial runs (local processes, Kubeflow jobs)."""

from kubesweep_dispatcher.platforms.base import JobObservation, LaunchRequest, Platform
from kubesweep_dispatcher.platforms.registry import create_platform, register_platform

__all__ = ["JobObservation", "LaunchRequest", "Platform", "create_platform", "register_platform"]
