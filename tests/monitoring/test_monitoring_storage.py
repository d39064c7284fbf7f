from __future__ import annotations

from datetime import date
from pathlib import Path

from mlops_pipeline.monitoring.storage import (
    INDEX_KEY,
    SUMMARY_COLUMNS,
    SUMMARY_KEY,
    rebuild_index,
    rebuild_summary,
    report_key,
    store_report,
    store_summary_record,
)
from mlops_pipeline.resources.object_store import LocalObjectStore

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


def test_reports_are_never_overwritten(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path)).scoped("teams/red")
    first = store_report(store, "AAPL", DAY, "<html>first</html>")
    second = store_report(store, "AAPL", DAY, "<html>second</html>")
    assert first == "monitoring/AAPL/2024-07-10/report.html" == report_key("AAPL", DAY)
    assert second == "monitoring/AAPL/2024-07-10/report.2.html"
    assert store.get_text(first) == "<html>first</html>"
    assert (tmp_path / "teams/red/monitoring/AAPL/2024-07-10/report.html").is_file()


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


def test_index_lists_every_report_with_relative_links(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path)).scoped("teams/red")
    for ticker, day in (("AAPL", DAY), ("AAPL", date(2024, 7, 9)), ("MSFT", DAY)):
        store_report(store, ticker, day, "<html></html>")
        store_summary_record(store, ticker, day, _record(ticker, day, 1.0))
    store_report(store, "AAPL", DAY, "<html>rerun</html>")
    rebuild_index(store, "red")
    page = store.get_text(INDEX_KEY)
    assert page.index("<h2>AAPL</h2>") < page.index("<h2>MSFT</h2>")
    assert page.index("2024-07-10") < page.index("2024-07-09")  # newest first
    assert 'href="AAPL/2024-07-10/report.html"' in page
    assert 'href="AAPL/2024-07-10/report.2.html">rerun 1</a>' in page
    assert 'href="MSFT/2024-07-10/report.html"' in page
    assert (tmp_path / "teams/red/monitoring/AAPL/2024-07-10/report.html").is_file()  # the link resolves
