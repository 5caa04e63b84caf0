"""Assessors: early stopping on intermediate results (NNI's ``Assessor`` extension point)."""

from kubesweep_tuner.assessors.base import Assessor, AssessResult
from kubesweep_tuner.assessors.registry import available, create_assessor, register

__all__ = ["AssessResult", "Assessor", "available", "create_assessor", "register"]
