"""Where monitoring output lives in the team store, and the derived summary table and index page.

``monitoring/<TICKER>/<YYYY-MM-DD>/report.html`` is written once and never replaced; re-running a
date stores ``report.2.html``, ``report.3.html``, ... next to it. Each date also keeps its latest
numbers in ``summary.json``. ``monitoring/summary.parquet`` and ``monitoring/index.html`` are
rebuilt from those per-date objects on every write, so concurrent runs for different tickers can
never lose each other's rows (the next rebuild includes everything stored).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.monitoring.html import index_page
from mlops_pipeline.resources.object_store import ObjectStore

ROOT = "monitoring"
SUMMARY_KEY = f"{ROOT}/summary.parquet"
INDEX_KEY = f"{ROOT}/index.html"
SUMMARY_COLUMNS: list[str] = [
    "date",
    "ticker",
    "drift_share",
    "drifted_features",
    "mae",
    "rmse",
    "mape",
    "directional_accuracy",
    "naive_mae",
    "n_predictions",
    "status",
]
_REPORT = re.compile(
    rf"^{ROOT}/(?P<ticker>[^/]+)/(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/report(\.(?P<n>\d+))?\.html$"
)


def report_dir(ticker: str, day: date) -> str:
    return f"{ROOT}/{ticker}/{day.isoformat()}"


def report_key(ticker: str, day: date, revision: int = 1) -> str:
    """Revision 1 is the contract key ``report.html``; later runs of the same date get ``report.<n>.html``."""
    name = "report.html" if revision == 1 else f"report.{revision}.html"
    return f"{report_dir(ticker, day)}/{name}"


def store_report(store: ObjectStore, ticker: str, day: date, html: str) -> str:
    """Store ``html`` under the first free revision key for the date; return that key."""
    revision = 1
    while store.exists(report_key(ticker, day, revision)):
        revision += 1
    key = report_key(ticker, day, revision)
    store.put_text(key, html)
    return key


def store_summary_record(store: ObjectStore, ticker: str, day: date, record: dict[str, Any]) -> str:
    """The date's latest numbers (one JSON object; a re-run replaces it)."""
    key = f"{report_dir(ticker, day)}/summary.json"
    store.put_text(key, json.dumps(record, sort_keys=True, default=str))
    return key


def _records(store: ObjectStore) -> list[dict[str, Any]]:
    records = []
    for key in store.list_keys(ROOT):
        if key.endswith("/summary.json"):
            records.append(json.loads(store.get_text(key)))
    return records


def rebuild_summary(store: ObjectStore) -> pd.DataFrame:
    """Rewrite ``monitoring/summary.parquet``: one row per (date, ticker), oldest first."""
    frame = pd.DataFrame(_records(store))
    for column in SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    frame = frame.loc[:, SUMMARY_COLUMNS]
    frame["date"] = pd.to_datetime(frame["date"])
    for column in ("drift_share", "mae", "rmse", "mape", "directional_accuracy", "naive_mae"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("drifted_features", "n_predictions"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame["ticker"] = frame["ticker"].astype("string")
    frame["status"] = frame["status"].astype("string")
    frame = frame.sort_values(["date", "ticker"]).reset_index(drop=True)
    store.put_parquet(SUMMARY_KEY, frame, {"rows": len(frame)})
    return frame


def rebuild_index(store: ObjectStore, team: str) -> str:
    """Rewrite ``monitoring/index.html`` listing every stored report; return its URI."""
    reports: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for key in store.list_keys(ROOT):
        match = _REPORT.match(key)
        if match:
            revision = int(match.group("n") or 1)
            reports.setdefault((match.group("ticker"), match.group("date")), []).append(
                (revision, key[len(ROOT) + 1 :])
            )
    numbers = {(str(record["ticker"]), str(record["date"])): record for record in _records(store)}
    entries = []
    for (ticker, day), revisions in reports.items():
        record = numbers.get((ticker, day), {})
        entries.append(
            {
                **record,
                "ticker": ticker,
                "date": day,
                "paths": [path for _, path in sorted(revisions)],
            }
        )
    return store.put_text(INDEX_KEY, index_page(team, entries))
