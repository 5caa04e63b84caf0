"""Hyperparameters: reading NNI's ``parameter.cfg`` and merging them into a script's defaults."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from . import protocol

_POLL_SECONDS = 0.5


def read_parameter_record(sys_dir: str, timeout: float) -> dict[str, Any]:
    """The record in ``<sys_dir>/parameter.cfg``: NNI's ``{"parameter_id", "parameters", …}``.

    Like NNI, waits for the file to be non-empty, because shared storage (NFS attribute
    caches, Azure Files) can show a freshly staged file late; unlike NNI, gives up after
    ``timeout`` seconds with an error instead of hanging the trial forever.
    """
    path = os.path.join(sys_dir, protocol.PARAMETER_FILE)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ""
        if text.strip():
            break
        if time.monotonic() >= deadline:
            raise FileNotFoundError(
                f"no hyperparameters: {path} is missing or empty after {timeout:g} s"
            )
        time.sleep(_POLL_SECONDS)
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("parameters"), dict):
        raise ValueError(f'{path} must hold an object with a "parameters" object')
    return record


def merge_parameter(base_params: Any, override_params: dict[str, Any] | None) -> Any:
    """Override keys of a dict, or attributes of an ``argparse.Namespace``, in place.

    As NNI's ``nni.utils.merge_parameter``: unknown keys raise ValueError and the updated
    ``base_params`` is returned. Unlike NNI, which raises TypeError on any type mismatch,
    values are cast to the type of the base value when no information is lost — a
    ``quniform`` tuner hands ``32.0`` to an ``int`` option — and TypeError is raised only
    when a cast would change the value (``0.5`` into an int, ``"yes"`` into a bool).
    """
    if override_params is None:
        return base_params
    is_dict = isinstance(base_params, dict)
    for key, value in override_params.items():
        if is_dict:
            if key not in base_params:
                raise ValueError(f"Key '{key}' not found in base parameters.")
            base_params[key] = _cast(key, base_params[key], value)
        else:
            if not hasattr(base_params, key):
                raise ValueError(f"Key '{key}' not found in base parameters.")
            setattr(base_params, key, _cast(key, getattr(base_params, key), value))
    return base_params


def _cast(key: str, base: Any, value: Any) -> Any:
    if base is None or value is None or type(base) is type(value):
        return value
    try:
        cast = _lossless(base, value)
    except (TypeError, ValueError):
        cast = _MISMATCH
    if cast is _MISMATCH:
        raise TypeError(
            f"Expected '{key}' in override parameters to have type "
            f"'{type(base).__name__}', but found '{type(value).__name__}' ({value!r})."
        )
    return cast


_MISMATCH = object()


def _lossless(base: Any, value: Any) -> Any:
    cast: Any = _MISMATCH
    if isinstance(base, bool) or isinstance(value, bool):
        pass  # bool("false") is True: never guess
    elif isinstance(base, int):
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and number.is_integer():
            cast = int(number)
        elif isinstance(value, int):
            cast = int(value)
    elif isinstance(base, float):
        if isinstance(value, (int, str)):
            cast = float(value)
    elif isinstance(base, str):
        if isinstance(value, (int, float)):
            cast = str(value)
    elif isinstance(base, (list, tuple)) and isinstance(value, (list, tuple)):
        cast = type(base)(value)
    return cast
