"""What monitoring keeps in the team store next to the evidently workspace.

Each date keeps its latest numbers and the id of its evidently snapshot in
``monitoring/<TICKER>/<YYYY-MM-DD>/summary.json`` (a re-run replaces it, and its snapshot
supersedes the previous one). ``monitoring/summary.parquet`` is rebuilt from those per-date objects
on every write, so concurrent runs for different tickers can never lose each other's rows (the next
rebuild includes everything stored). ``monitoring/<TICKER>/reference-<version>.json`` records the
evidently dataset that holds a champion version's reference window, so it is stored once.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.objects import Objects
from mlops_pipeline.team_store import (
    MONITORING_PREFIX,
    MONITORING_SUMMARY_COLUMNS,
    MONITORING_SUMMARY_KEY,
    monitoring_record_key,
)


def read_summary_record(store: Objects, ticker: str, day: date) -> dict[str, Any] | None:
    """The date's stored record (numbers, status and its snapshot's ids), if monitoring ran."""
    key = monitoring_record_key(ticker, day)
    return json.loads(store.get_text(key)) if store.exists(key) else None


def store_summary_record(store: Objects, ticker: str, day: date, record: dict[str, Any]) -> str:
    """The date's latest numbers (one JSON object; a re-run replaces it)."""
    key = monitoring_record_key(ticker, day)
    store.put_text(key, json.dumps(record, sort_keys=True, default=str))
    return key


def _records(store: Objects) -> list[dict[str, Any]]:
    records = []
    for key in store.list_keys(MONITORING_PREFIX):
        if key.endswith("/summary.json"):
            records.append(json.loads(store.get_text(key)))
    return records


def rebuild_summary(store: Objects) -> pd.DataFrame:
    """Rewrite ``monitoring/summary.parquet``: one row per (date, ticker), oldest first."""
    frame = pd.DataFrame(_records(store))
    for column in MONITORING_SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    frame = frame.loc[:, MONITORING_SUMMARY_COLUMNS]
    frame["date"] = pd.to_datetime(frame["date"])
    for column in ("drift_share", "mae", "rmse", "mape", "directional_accuracy", "naive_mae"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("drifted_features", "n_predictions"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame["ticker"] = frame["ticker"].astype("string")
    frame["status"] = frame["status"].astype("string")
    frame = frame.sort_values(["date", "ticker"]).reset_index(drop=True)
    store.put_parquet(MONITORING_SUMMARY_KEY, frame, {"rows": len(frame)})
    return frame
