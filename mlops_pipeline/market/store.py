"""Where market tables live in the object store, and how they are read back."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_pipeline.resources.object_store import ObjectStore


def prices_key(ticker: str) -> str:
    return f"market/prices/{ticker}.parquet"


def features_key(ticker: str) -> str:
    return f"market/features/{ticker}.parquet"


def _read(store: ObjectStore, key: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    if not store.exists(key):
        return None, {}
    return store.get_parquet_with_manifest(key)


def read_prices(store: ObjectStore, ticker: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The stored price history of ``ticker`` and its manifest, or ``(None, {})``."""
    return _read(store, prices_key(ticker))


def read_features(store: ObjectStore, ticker: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The stored feature table of ``ticker`` and its manifest, or ``(None, {})``."""
    return _read(store, features_key(ticker))
