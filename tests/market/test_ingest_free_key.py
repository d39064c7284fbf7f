"""A free key extends an adjusted (premium-fetched or imported) history with raw compact windows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from _frames import random_walk_prices, with_split

from mlops_pipeline.market.alphavantage import AlphaVantageClient, DailySeries, OutputSize
from mlops_pipeline.market.checks import check_price_history
from mlops_pipeline.market.importing import import_prices
from mlops_pipeline.market.ingest import COMPACT_ROWS, extend_adjusted_history, ingest_prices, plan_ingest
from mlops_pipeline.market.store import read_prices
from mlops_pipeline.resources.object_store import LocalObjectStore
from mlops_pipeline.sandbox.alphavantage_api import render_daily_csv
from mlops_pipeline.sandbox.market import SyntheticMarket


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return random_walk_prices(260)


def raw_fetch(raw: pd.DataFrame, calls: list[tuple[str, OutputSize, bool]]):
    """A fetch that serves ``raw`` as TIME_SERIES_DAILY (no adjustment data) and records its calls."""

    def fetch(symbol: str, outputsize: OutputSize, adjusted: bool) -> DailySeries:
        calls.append((symbol, outputsize, adjusted))
        assert not adjusted
        frame = raw.assign(adjusted_close=raw["close"], dividend_amount=0.0, split_coefficient=1.0)
        frame = frame.tail(COMPACT_ROWS).reset_index(drop=True)
        return DailySeries(symbol, frame, False, outputsize, frame["date"].iloc[-1].date(), 1)

    return fetch


def day(frame: pd.DataFrame, row: int) -> date:
    return frame["date"].iloc[row].date()


def test_free_key_plans_a_raw_compact_request_for_an_adjusted_history() -> None:
    plan = plan_ingest(date(2024, 6, 7), date(2024, 6, 14), premium=False, stored_adjusted=True)
    assert (plan.fetch, plan.outputsize, plan.adjusted) == (True, "compact", False)
    assert "5 new session(s)" in plan.reason and "inferred splits" in plan.reason

    gap = plan_ingest(date(2023, 6, 1), date(2024, 6, 14), premium=False, stored_adjusted=True)
    assert (gap.fetch, gap.outputsize, gap.adjusted) == (True, "compact", False)
    assert "older ones stay missing" in gap.reason


def test_premium_and_up_to_date_plans_are_unchanged() -> None:
    premium = plan_ingest(date(2024, 6, 7), date(2024, 6, 14), premium=True, stored_adjusted=True)
    assert (premium.fetch, premium.outputsize, premium.adjusted) == (True, "compact", True)
    upgrade = plan_ingest(date(2024, 6, 7), date(2024, 6, 14), premium=True, stored_adjusted=False)
    assert (upgrade.outputsize, upgrade.adjusted) == ("full", True)
    current = plan_ingest(date(2024, 6, 14), date(2024, 6, 14), premium=False, stored_adjusted=True)
    assert not current.fetch and current.adjusted


def test_free_key_appends_only_the_new_sessions_and_stays_adjusted(prices) -> None:
    stored = prices.iloc[:200]
    served = prices.iloc[150:240].copy()
    served.loc[served.index[10], "close"] *= 1.01  # a stored date the window disagrees on: ignored
    calls: list[tuple[str, OutputSize, bool]] = []

    result = ingest_prices("ACME", stored, True, day(prices, 229), False, raw_fetch(served, calls))

    assert calls == [("ACME", "compact", False)]
    assert result.adjusted is True
    assert (result.api_calls, result.appended) == (1, 30)
    assert result.revisions.empty
    pd.testing.assert_frame_equal(result.history, prices.iloc[:230].reset_index(drop=True))


def test_a_split_in_the_appended_rows_is_inferred_and_older_rows_readjusted(prices) -> None:
    ex_row = 215
    truth = with_split(prices, prices["date"].iloc[ex_row], 4.0, provider_adjusted=True)
    traded = with_split(prices, prices["date"].iloc[ex_row], 4.0, provider_adjusted=False)
    stored = prices.iloc[:200]  # fetched or imported before the split: adjusted_close == close
    calls: list[tuple[str, OutputSize, bool]] = []

    result = ingest_prices("ACME", stored, True, day(prices, 239), False, raw_fetch(traded.iloc[:240], calls))

    assert result.adjusted is True and result.appended == 40
    history = result.history.set_index("date")
    assert (
        history["split_coefficient"].to_dict()
        == truth.iloc[:240].set_index("date")["split_coefficient"].to_dict()
    )
    pd.testing.assert_frame_equal(result.history, truth.iloc[:240].reset_index(drop=True), rtol=1e-12)


def test_extend_ignores_rows_up_to_the_stored_last_date(prices) -> None:
    merged = extend_adjusted_history(prices.iloc[:200], prices.iloc[:200])
    pd.testing.assert_frame_equal(merged.history, prices.iloc[:200].reset_index(drop=True))
    assert merged.appended == 0 and merged.revisions.empty


def test_a_gap_beyond_the_compact_window_stays_missing(prices) -> None:
    stored = prices.iloc[:100]
    calls: list[tuple[str, OutputSize, bool]] = []
    result = ingest_prices("ACME", stored, True, day(prices, 259), False, raw_fetch(prices, calls))

    assert "older ones stay missing" in result.plan.reason
    assert result.appended == COMPACT_ROWS and result.adjusted is True
    assert result.history["date"].tolist() == [*prices["date"].iloc[:100], *prices["date"].iloc[160:]]


# -- against the sandbox: import a CSV, then extend it with a free key ------------------------------

SANDBOX_TODAY = date(2024, 6, 14)


@pytest.fixture
def free_client(sandbox_url: str, request: pytest.FixtureRequest) -> Iterator[AlphaVantageClient]:
    client = AlphaVantageClient(f"free-{request.node.name[-24:]}", base_url=sandbox_url, premium=False)
    yield client
    client.close()


def _import(tmp_path: Path, market: SyntheticMarket, symbol: str, until: date) -> LocalObjectStore:
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    seed = tmp_path / "seed"
    seed.mkdir()
    body = render_daily_csv(market.history(symbol, SANDBOX_TODAY), adjusted=True).body
    (seed / f"{symbol}.csv").write_text(body, newline="")
    [outcome] = import_prices(store, seed, until=until)
    assert outcome.ok, outcome.error
    return store


def test_import_then_free_key_fetch_extends_by_exactly_the_new_sessions(
    tmp_path: Path, synthetic_market: SyntheticMarket, free_client: AlphaVantageClient, sandbox_today: date
) -> None:
    store = _import(tmp_path, synthetic_market, "AAPL", date(2024, 6, 7))
    stored, manifest = read_prices(store, "AAPL", date(2024, 6, 7))
    assert manifest["adjusted"] is True

    result = ingest_prices("AAPL", stored, manifest["adjusted"], sandbox_today, False, free_client.daily)

    assert result.adjusted is True
    assert (result.api_calls, result.appended) == (1, 5)
    assert result.plan.outputsize == "compact" and not result.plan.adjusted
    full = synthetic_market.history("AAPL", sandbox_today).reset_index(drop=True)
    pd.testing.assert_frame_equal(result.history.iloc[: len(stored)], stored)
    new = result.history.iloc[len(stored) :].reset_index(drop=True)
    expected_new = full.iloc[len(stored) :].reset_index(drop=True)
    raw_columns = ["date", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(new[raw_columns], expected_new[raw_columns])
    assert (new["adjusted_close"] == new["close"]).all()
    assert (new["split_coefficient"] == 1.0).all() and (new["dividend_amount"] == 0.0).all()
    assert all(outcome.passed for outcome in check_price_history(result.history, sandbox_today))


def test_a_real_split_after_the_import_is_inferred_from_the_free_series(
    tmp_path: Path, synthetic_market: SyntheticMarket, free_client: AlphaVantageClient, sandbox_today: date
) -> None:
    """NVDA splits 10:1 on 2024-06-10 in the synthetic market; the import stops before it."""
    store = _import(tmp_path, synthetic_market, "NVDA", date(2024, 6, 5))
    stored, manifest = read_prices(store, "NVDA", date(2024, 6, 5))

    result = ingest_prices("NVDA", stored, manifest["adjusted"], sandbox_today, False, free_client.daily)

    assert result.adjusted is True and result.appended == 7
    full = synthetic_market.history("NVDA", sandbox_today).reset_index(drop=True)
    coefficients = result.history.set_index("date")["split_coefficient"]
    assert coefficients[pd.Timestamp("2024-06-10")] == 10.0
    assert (coefficients.drop(pd.Timestamp("2024-06-10")).tail(300) == 1.0).all()
    assert full["dividend_amount"].tail(7).eq(0.0).all()  # no dividend the free series could miss
    pd.testing.assert_series_equal(result.history["adjusted_close"], full["adjusted_close"], rtol=1e-5)
    pd.testing.assert_series_equal(
        result.history["close"].iloc[:-7], stored["close"], check_exact=True, check_names=True
    )
    assert all(outcome.passed for outcome in check_price_history(result.history, sandbox_today))
