"""Where market tables live in the object store, and how they are read back.

Each session has its own snapshot per ticker: ``market/prices/<TICKER>/<YYYY-MM-DD>.parquet`` is
the price history as known after that session, ``market/features/<TICKER>/<YYYY-MM-DD>.parquet``
the features computed from it. Writing one session never rewrites another, so sessions can be
materialized in any order and side by side.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.resources.object_store import ObjectStore, parquet_sessions

PRICES_PREFIX = "market/prices"
FEATURES_PREFIX = "market/features"


def prices_key(ticker: str, session: date) -> str:
    return f"{PRICES_PREFIX}/{ticker}/{session.isoformat()}.parquet"


def features_key(ticker: str, session: date) -> str:
    return f"{FEATURES_PREFIX}/{ticker}/{session.isoformat()}.parquet"


def stored_sessions(store: ObjectStore, prefix: str, ticker: str) -> list[date]:
    """The sessions with a stored snapshot of ``ticker`` under ``prefix``, oldest first."""
    return parquet_sessions(store, f"{prefix}/{ticker}")


def _read(store: ObjectStore, key: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    if not store.exists(key):
        return None, {}
    return store.get_parquet_with_manifest(key)


def read_prices(store: ObjectStore, ticker: str, session: date) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The price history of ``ticker`` stored for ``session`` and its manifest, or ``(None, {})``."""
    return _read(store, prices_key(ticker, session))


def read_features(
    store: ObjectStore, ticker: str, session: date
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The feature table of ``ticker`` stored for ``session`` and its manifest, or ``(None, {})``."""
    return _read(store, features_key(ticker, session))


def latest_prices(
    store: ObjectStore, ticker: str, until: date | None = None
) -> tuple[pd.DataFrame | None, dict[str, Any], date | None]:
    """The newest price snapshot of ``ticker`` on or before ``until`` (default: any), its manifest
    and its session; ``(None, {}, None)`` when there is none."""
    sessions = [day for day in stored_sessions(store, PRICES_PREFIX, ticker) if until is None or day <= until]
    if not sessions:
        return None, {}, None
    frame, manifest = read_prices(store, ticker, sessions[-1])
    return frame, manifest, sessions[-1]


def latest_features(
    store: ObjectStore, ticker: str
) -> tuple[pd.DataFrame | None, dict[str, Any], date | None]:
    """The newest feature snapshot of ``ticker``, its manifest and its session."""
    sessions = stored_sessions(store, FEATURES_PREFIX, ticker)
    if not sessions:
        return None, {}, None
    frame, manifest = read_features(store, ticker, sessions[-1])
    return frame, manifest, sessions[-1]
