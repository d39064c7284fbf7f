"""Market data for training tests: synthetic prices and features in the object store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.market.features import build_features
from mlops_pipeline.market.store import features_key, prices_key
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.training.dataset import frame_fingerprint


def folder_bytes(folder: str | Path) -> int:
    """Bytes stored under ``folder`` (a local DVC remote), to see that nothing new was pushed."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def put_market_data(settings: PlatformSettings, ticker: str, end: date) -> pd.DataFrame:
    """Synthetic prices and their features up to ``end`` in the object store, checks passed."""
    prices = SyntheticMarket(start=date(2024, 1, 2)).history(ticker, end)
    features = build_features(prices)
    store = object_store_from_settings(settings)
    prices_version = frame_fingerprint(prices)
    store.put_parquet(prices_key(ticker, end), prices, {"data_version": prices_version, "failed_checks": []})
    store.put_parquet(
        features_key(ticker, end),
        features,
        {"prices_version": prices_version, "data_version": frame_fingerprint(features), "failed_checks": []},
    )
    return features
