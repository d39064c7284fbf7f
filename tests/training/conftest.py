"""Market data in the object store and a small team, for the training tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import TeamConfig, load_teams
from mlops_pipeline.market.features import build_features
from mlops_pipeline.market.store import features_key, prices_key
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.training.dataset import frame_fingerprint

TEAM_YAML = """\
tickers: [AAPL]
model: {ludwig_config: return_mlp.yaml, train_window_days: 200}
evaluation: {folds: 3, test_days: 10, purge_days: 5}
promotion: {metric: mae, min_skill_vs_naive: -1.0}
"""


def put_market_data(settings: PlatformSettings, ticker: str, end: date) -> pd.DataFrame:
    """Synthetic prices and their features up to ``end`` in the object store, checks passed."""
    prices = SyntheticMarket(start=date(2024, 1, 2)).history(ticker, end)
    features = build_features(prices)
    store = object_store_from_settings(settings)
    prices_version = frame_fingerprint(prices)
    store.put_parquet(prices_key(ticker), prices, {"data_version": prices_version, "failed_checks": []})
    store.put_parquet(
        features_key(ticker),
        features,
        {"prices_version": prices_version, "data_version": frame_fingerprint(features), "failed_checks": []},
    )
    return features


@pytest.fixture
def small_team(project: Path) -> tuple[PlatformSettings, TeamConfig]:
    (project / "teams" / "green.yaml").write_text(TEAM_YAML, encoding="utf-8")
    settings = load_settings()
    return settings, load_teams(settings.teams_path, settings.ludwig_configs_path, only=["green"])["green"]
