"""Where market tables live in the object store, and how they are read back.

Each session has its own snapshot per ticker: ``market/prices/<TICKER>/<YYYY-MM-DD>.parquet`` is
the price history as known after that session, ``market/features/<TICKER>/<YYYY-MM-DD>.parquet``
the features computed from it. Writing one session never rewrites another, so sessions can be
materialized in any order and side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.objects import Objects, session_dates

PRICES_PREFIX = "market/prices"
FEATURES_PREFIX = "market/features"


def prices_key(ticker: str, session: date) -> str:
    return f"{PRICES_PREFIX}/{ticker}/{session.isoformat()}.parquet"


def features_key(ticker: str, session: date) -> str:
    return f"{FEATURES_PREFIX}/{ticker}/{session.isoformat()}.parquet"


def stored_sessions(store: Objects, prefix: str, ticker: str) -> list[date]:
    """The sessions with a stored snapshot of ``ticker`` under ``prefix``, oldest first."""
    return session_dates(store, f"{prefix}/{ticker}")


def _read(store: Objects, key: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    if not store.exists(key):
        return None, {}
    return store.get_parquet_with_manifest(key)


def no_features(ticker: str, session: date) -> str:
    """The one line that says the session's features of ``ticker`` are not stored yet."""
    return f"no features for {ticker} on {session}: materialize market/features first"


def read_prices(store: Objects, ticker: str, session: date) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The price history of ``ticker`` stored for ``session`` and its manifest, or ``(None, {})``."""
    return _read(store, prices_key(ticker, session))


def read_features(store: Objects, ticker: str, session: date) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The feature table of ``ticker`` stored for ``session`` and its manifest, or ``(None, {})``."""
    return _read(store, features_key(ticker, session))


@dataclass(frozen=True)
class MarketInputs:
    """A ticker's features of one session and the manifests of the data they came from."""

    features: pd.DataFrame | None
    features_manifest: dict[str, Any]
    prices_manifest: dict[str, Any]

    @property
    def failed_checks(self) -> list[str]:
        """The blocking checks the session's prices or features failed, sorted."""
        return sorted(
            {*self.features_manifest.get("failed_checks", []), *self.prices_manifest.get("failed_checks", [])}
        )

    @property
    def features_current(self) -> bool:
        """Whether the features were computed from the prices now stored for the session."""
        return self.features_manifest.get("prices_version") == self.prices_manifest.get("data_version")


def read_market_inputs(store: Objects, ticker: str, session: date) -> MarketInputs:
    features, features_manifest = read_features(store, ticker, session)
    _, prices_manifest = read_prices(store, ticker, session)
    return MarketInputs(features, features_manifest, prices_manifest)


def latest_prices(
    store: Objects, ticker: str, until: date | None = None
) -> tuple[pd.DataFrame | None, dict[str, Any], date | None]:
    """The newest price snapshot of ``ticker`` on or before ``until`` (default: any), its manifest
    and its session; ``(None, {}, None)`` when there is none."""
    sessions = [day for day in stored_sessions(store, PRICES_PREFIX, ticker) if until is None or day <= until]
    if not sessions:
        return None, {}, None
    frame, manifest = read_prices(store, ticker, sessions[-1])
    return frame, manifest, sessions[-1]
