"""Reading Ludwig model configs from ``ludwig_configs/`` (plain YAML; ludwig itself is not imported)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_pipeline.config.errors import ConfigError, ConfigIssue
from mlops_pipeline.config.ludwig_schema import validation_issues
from mlops_pipeline.config.overlay import read_yaml_mapping
from mlops_pipeline.market.features import FEATURE_COLUMNS, TARGET_COLUMNS


@dataclass(frozen=True)
class LudwigConfigFile:
    path: Path
    config: dict[str, Any]

    @property
    def input_features(self) -> list[str]:
        return [feature["name"] for feature in self.config["input_features"]]

    @property
    def output_features(self) -> list[str]:
        return [feature["name"] for feature in self.config["output_features"]]

    @property
    def output(self) -> str:
        """The single output feature (the platform trains one target per model)."""
        return self.output_features[0]

    @property
    def digest(self) -> str:
        """A stable short hash of the config's content (not of its file name or formatting)."""
        canonical = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def display_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def load_ludwig_config(path: Path, schema_cache_dir: Path | None = None) -> LudwigConfigFile:
    """Read a Ludwig config, validate it against Ludwig's schema and check that it only uses
    columns the feature table provides, with exactly one output."""
    display = display_name(path)
    config = read_yaml_mapping(path, display)
    issues: list[ConfigIssue] = list(validation_issues(config, display, schema_cache_dir))
    for section, allowed in (("input_features", FEATURE_COLUMNS), ("output_features", TARGET_COLUMNS)):
        features = config.get(section)
        if not isinstance(features, list) or not features:
            issues.append(ConfigIssue(display, section, "must be a non-empty list of features"))
            continue
        for index, feature in enumerate(features):
            name = feature.get("name") if isinstance(feature, dict) else None
            if name not in allowed:
                message = f"{name!r} is not a column of the feature table ({', '.join(allowed)})"
                issues.append(ConfigIssue(display, f"{section}[{index}].name", message))
    outputs = config.get("output_features")
    if isinstance(outputs, list) and len(outputs) > 1:
        issues.append(ConfigIssue(display, "output_features", "exactly one output feature is supported"))
    if issues:
        raise ConfigError(issues)
    return LudwigConfigFile(path=path, config=config)
