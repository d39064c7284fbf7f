"""How two resolved team configs differ, key path by key path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_pipeline.config.overlay import format_key_path
from mlops_pipeline.config.teams import TeamConfig

MISSING = "<not set>"


@dataclass(frozen=True)
class ConfigDifference:
    key: str  # dotted path, e.g. strategy.params.threshold (lists are compared whole)
    left: Any
    right: Any


def _leaves(value: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, (*path, str(key))))
        return out
    return {format_key_path(path): value}


def diff_configs(left: TeamConfig, right: TeamConfig) -> list[ConfigDifference]:
    """Every key whose resolved value differs (the team name itself is left out), sorted by key."""
    left_leaves = _leaves(left.model_dump(mode="json", exclude={"name"}))
    right_leaves = _leaves(right.model_dump(mode="json", exclude={"name"}))
    keys = sorted(set(left_leaves) | set(right_leaves))
    return [
        ConfigDifference(key, left_leaves.get(key, MISSING), right_leaves.get(key, MISSING))
        for key in keys
        if left_leaves.get(key, MISSING) != right_leaves.get(key, MISSING)
    ]
