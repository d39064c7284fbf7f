from __future__ import annotations

from datetime import date
from pathlib import Path

from mlops_pipeline.monitoring.storage import read_summary_record, rebuild_summary, store_summary_record
from mlops_pipeline.resources.object_store import LocalObjectStore
from mlops_pipeline.team_store import MONITORING_SUMMARY_COLUMNS as SUMMARY_COLUMNS
from mlops_pipeline.team_store import MONITORING_SUMMARY_KEY as SUMMARY_KEY

DAY = date(2024, 7, 10)


def _record(ticker: str, day: date, mae: float, status: str = "ok") -> dict:
    return {
        "date": day.isoformat(),
        "ticker": ticker,
        "drift_share": 0.25,
        "drifted_features": 2,
        "mae": mae,
        "rmse": mae * 1.2,
        "mape": 1.0,
        "directional_accuracy": 0.6,
        "naive_mae": mae * 1.1,
        "n_predictions": 19,
        "status": status,
        "drifted_feature_names": ["rsi_14", "macd_hist"],
    }


def test_summary_has_one_row_per_date_and_ticker_after_reruns(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path)).scoped("teams/red")
    store_summary_record(store, "AAPL", DAY, _record("AAPL", DAY, 1.0))
    store_summary_record(store, "MSFT", DAY, _record("MSFT", DAY, 2.0))
    store_summary_record(store, "AAPL", date(2024, 7, 9), _record("AAPL", date(2024, 7, 9), 3.0))
    store_summary_record(store, "AAPL", DAY, _record("AAPL", DAY, 1.5, "drift"))  # re-run of a date
    frame = rebuild_summary(store)
    assert list(frame.columns) == SUMMARY_COLUMNS
    assert len(frame) == 3
    stored = store.get_parquet(SUMMARY_KEY)
    assert list(stored.columns) == SUMMARY_COLUMNS
    rerun = stored.loc[(stored["ticker"] == "AAPL") & (stored["date"] == "2024-07-10")].iloc[0]
    assert rerun["mae"] == 1.5 and rerun["status"] == "drift"
    assert str(stored["date"].dtype).startswith("datetime64")
    assert stored["date"].is_monotonic_increasing
    assert read_summary_record(store, "AAPL", DAY)["status"] == "drift"  # the re-run's record
    assert read_summary_record(store, "AAPL", date(2024, 7, 8)) is None
