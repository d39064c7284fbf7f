"""Market data in the object store and a small team, for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import TeamConfig, load_teams

TEAM_YAML = """\
tickers: [AAPL]
model: {ludwig_config: return_mlp.yaml, train_window_days: 200}
evaluation: {folds: 3, test_days: 10, purge_days: 5}
promotion: {metric: mae, min_skill_vs_naive: -1.0}
"""


@pytest.fixture
def small_team(project: Path) -> tuple[PlatformSettings, TeamConfig]:
    (project / "teams" / "green.yaml").write_text(TEAM_YAML, encoding="utf-8")
    settings = load_settings()
    return settings, load_teams(settings.teams_path, settings.ludwig_configs_path, only=["green"])["green"]
