"""Entry points: detect the NNI config format, parse it, attach the search space."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kubesweep.config.nni_v1 import parse_v1
from kubesweep.config.nni_v2 import parse_v2
from kubesweep.config.reader import Section
from kubesweep.config.spec import ExperimentSpec
from kubesweep.config.values import Draft, missing_search_space, resolve_path
from kubesweep.config.yamlsource import YamlMap, parse_document, to_json_compatible
from kubesweep.errors import ConfigError
from kubesweep.searchspace import load_search_space_file, validate_search_space

__all__ = ["detect_format", "load_config_file", "parse_config"]

_V1_MARKERS = (
    "trainingServicePlatform",
    "authorName",
    "trial",
    "searchSpacePath",
    "maxTrialNum",
    "maxExecDuration",
    "kubeflowConfig",
    "localConfig",
)
_V2_MARKERS = (
    "trainingService",
    "trialCommand",
    "searchSpaceFile",
    "maxTrialNumber",
    "maxExperimentDuration",
    "trialCodeDirectory",
    "searchSpace",
)


def load_config_file(path: Path) -> ExperimentSpec:
    """Load an NNI v1/v2 YAML or JSON config file; relative paths are from its folder."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist", field="config") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}", field="config") from exc
    return parse_config(text, source=path.name, base_dir=path.absolute().parent)


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    search_space: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """Parse config text into an ExperimentSpec.

    ``search_space``, when given, replaces whatever the config references (the API server
    receives it separately). Without ``base_dir`` paths stay as written and no file is read.
    """
    root = Section(parse_document(text, source=source))
    draft = parse_v1(root, base_dir) if detect_format(root) == "v1" else parse_v2(root, base_dir)
    fields = dict(draft.fields, search_space=_search_space(draft, base_dir, search_space))
    try:
        return ExperimentSpec(**fields)
    except ValidationError as exc:  # the loaders check everything first; this is a backstop
        raise ConfigError(f"invalid experiment: {exc}", field=source) from exc


def detect_format(root: Section) -> str:
    """``"v1"`` or ``"v2"``, from the keys only one of the formats has."""
    v1 = [key for key in _V1_MARKERS if key in root.data]
    v2 = [key for key in _V2_MARKERS if key in root.data]
    if v1 and v2:
        # Point at the format the config uses less: that key is the likely stray.
        raise root.error(
            v2[0] if len(v1) >= len(v2) else v1[0],
            f"the config mixes NNI v1 keys ({', '.join(v1)}) with NNI v2 keys ({', '.join(v2)}); "
            "use one format: v1 has trainingServicePlatform, trial and searchSpacePath, v2 has "
            "trainingService, trialCommand and searchSpaceFile",
        )
    if v1:
        return "v1"
    if v2:
        return "v2"
    raise ConfigError(
        "cannot tell whether this is an NNI v1 or v2 config; add trainingServicePlatform (v1) "
        "or trainingService (v2)",
        field="trainingService",
        line=1,
    )


def _search_space(
    draft: Draft, base_dir: Path | None, override: dict[str, Any] | None
) -> dict[str, Any]:
    if override is not None:
        return validate_search_space(override)
    inline = draft.inline_search_space
    if inline is not None:
        data = to_json_compatible(inline.data, field=inline.path, line=inline.line)
        try:
            return validate_search_space(data, field=inline.path)
        except ConfigError as exc:
            raise ConfigError(
                exc.reason, field=exc.field, line=_line_in(inline, exc.field or "")
            ) from exc
    key = draft.search_space_key
    if draft.search_space_file is None:
        raise missing_search_space(key)
    if base_dir is None:
        raise ConfigError(
            f"{draft.search_space_file!r} is not read when parsing text without a folder; "
            "send the search space along with the config",
            field=key,
            line=draft.search_space_line,
        )
    file = Path(resolve_path(draft.search_space_file, base_dir))
    try:
        return load_search_space_file(file, field=key)
    except ConfigError as exc:
        if exc.field != key:
            raise
        raise ConfigError(exc.reason, field=key, line=draft.search_space_line) from exc


def _line_in(sec: Section, field: str) -> int | None:
    """Best-effort line of a dotted search-space path inside an inline ``searchSpace``."""
    line = sec.line
    node: Any = sec.data
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", field[len(sec.path) :]):
        if index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        elif name and isinstance(node, dict) and name in node:
            if isinstance(node, YamlMap):
                line = node.key_lines.get(name, line)
            node = node[name]
        else:
            break
    return line
