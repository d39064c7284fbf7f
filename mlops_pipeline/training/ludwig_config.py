"""Reading Ludwig model configs from ``ludwig_configs/`` (plain YAML; ludwig itself is not imported)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_pipeline.config.errors import ConfigError, ConfigIssue
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


def load_ludwig_config(path: Path) -> LudwigConfigFile:
    """Read a Ludwig config and check that it only uses columns the feature table provides."""
    display = f"{path.parent.name}/{path.name}"
    config = read_yaml_mapping(path, display)
    issues: list[ConfigIssue] = []
    for section, allowed in (("input_features", FEATURE_COLUMNS), ("output_features", TARGET_COLUMNS)):
        features = config.get(section)
        if not isinstance(features, list) or not features:
            raise ConfigError.single(display, section, "must be a non-empty list of features")
        for index, feature in enumerate(features):
            name = feature.get("name") if isinstance(feature, dict) else None
            if name not in allowed:
                message = f"{name!r} is not a column of the feature table ({', '.join(allowed)})"
                issues.append(ConfigIssue(display, f"{section}[{index}].name", message))
    if issues:
        raise ConfigError(issues)
    return LudwigConfigFile(path=path, config=config)
