"""YAML loading with duplicate-key detection, and a deep merge that remembers which file set what.

Merge rule: mappings merge key by key, everything else (lists, scalars) is replaced by the overlay.
A mapping whose ``name`` differs between the layers (e.g. ``strategy: {name: ..., params: ...}``)
is a different thing, not an edit: the overlay's mapping replaces it whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlops_pipeline.config.errors import ConfigError

KeyPath = tuple[str | int, ...]


class _UniqueKeyLoader(yaml.CSafeLoader):
    """libyaml's SafeLoader (an eighth of the pure-Python parser's time: every run loads the team
    and Ludwig configurations) that rejects a mapping key given twice instead of keeping the last."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def parse_yaml_mapping(text: str, source: str) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping (an empty document is an empty mapping)."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError.single(source, "", f"YAML syntax error: {where}{problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError.single(source, "", f"YAML syntax error: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError.single(source, "", f"must be a mapping at the top level, got {type(data).__name__}")
    non_string = [key for key in data if not isinstance(key, str)]
    if non_string:
        raise ConfigError.single(source, str(non_string[0]), "top-level keys must be strings")
    return data


def read_yaml_mapping(path: Path, display: str | None = None) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping."""
    source = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError.single(source, "", "file not found") from exc
    return parse_yaml_mapping(text, source)


def deep_merge(
    layers: list[tuple[str, Mapping[str, Any]]],
) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """Merge ``(source, mapping)`` layers in order; later layers win.

    Returns the merged mapping and a provenance map from every key path (mappings and leaves) to
    the last source that set or extended it.
    """
    merged: dict[str, Any] = {}
    provenance: dict[KeyPath, str] = {}
    for source, layer in layers:
        _merge_into(merged, layer, (), source, provenance)
    return merged, provenance


def _merge_into(
    target: dict[str, Any],
    layer: Mapping[str, Any],
    prefix: KeyPath,
    source: str,
    provenance: dict[KeyPath, str],
) -> None:
    provenance[prefix] = source
    for key, value in layer.items():
        path = (*prefix, key)
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict) and _same_kind(current, value):
            _merge_into(target[key], value, path, source, provenance)
            continue
        target[key] = _plain_copy(value)
        for stale in [p for p in provenance if p[: len(path)] == path]:
            del provenance[stale]
        _record_leaves(value, path, source, provenance)


def _same_kind(current: Mapping[str, Any], overlay: Mapping[str, Any]) -> bool:
    return "name" not in overlay or "name" not in current or overlay["name"] == current["name"]


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_copy(item) for item in value]
    return value


def _record_leaves(value: Any, path: KeyPath, source: str, provenance: dict[KeyPath, str]) -> None:
    provenance[path] = source
    if isinstance(value, Mapping):
        for key, item in value.items():
            _record_leaves(item, (*path, key), source, provenance)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record_leaves(item, (*path, index), source, provenance)


def source_of(path: KeyPath, provenance: dict[KeyPath, str]) -> str:
    """The file responsible for ``path``: the source of its longest recorded prefix."""
    for length in range(len(path), -1, -1):
        source = provenance.get(path[:length])
        if source is not None:
            return source
    return provenance.get((), "")


def format_key_path(path: KeyPath) -> str:
    """``('tickers', 2)`` -> ``tickers[2]``; ``('risk', 'max_position_pct')`` -> ``risk.max_position_pct``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
