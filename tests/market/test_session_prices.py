"""A session's price snapshot: one request at most, nothing rewritten on a rerun, waits and refusals
that leave the stored snapshots as they were."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from mlops_pipeline.market.alphavantage import DailySeries, InvalidApiKeyError, OutputSize
from mlops_pipeline.market.budget import BudgetExhaustedError, RequestBudget
from mlops_pipeline.market.session_prices import Snapshot, session_prices
from mlops_pipeline.market.store import prices_key, read_prices
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.resources.object_store import LocalObjectStore
from mlops_pipeline.sandbox.market import SyntheticMarket

FRIDAY, MONDAY = date(2024, 6, 14), date(2024, 6, 17)


@dataclass
class FakeMarketData:
    """Serves a synthetic market's adjusted history as of the requested session, or fails."""

    budget_path: Path
    source: str = "sandbox"
    premium: bool = True
    error: Exception | None = None
    requests: list[date] = field(default_factory=list)

    def fetch_daily(self, symbol: str, outputsize: OutputSize, adjusted: bool, session: date) -> DailySeries:
        if self.error is not None:
            raise self.error
        self.requests.append(session)
        frame = SyntheticMarket(start=date(2024, 1, 2)).history(symbol, session)
        return DailySeries(symbol, frame, True, outputsize, session, 1)

    def budget(self) -> RequestBudget:
        return RequestBudget(self.budget_path, "key", daily_limit=1)


@pytest.fixture
def objects(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects"))


@pytest.fixture
def market(tmp_path: Path) -> FakeMarketData:
    return FakeMarketData(tmp_path / "budget.sqlite")


def test_a_session_is_fetched_once_and_a_rerun_rewrites_nothing(
    objects: LocalObjectStore, market: FakeMarketData
) -> None:
    first = session_prices("AAPL", FRIDAY, objects, market)
    assert isinstance(first, Snapshot) and not first.unchanged
    assert first.result.api_calls == 1 and first.manifest["failed_checks"] == []
    stored = Path(objects.root) / prices_key("AAPL", FRIDAY)
    written = stored.stat().st_mtime_ns

    again = session_prices("AAPL", FRIDAY, objects, market)

    assert isinstance(again, Snapshot) and again.unchanged
    assert again.result.api_calls == 0 and market.requests == [FRIDAY]
    assert again.manifest == first.manifest and stored.stat().st_mtime_ns == written


def test_an_exhausted_budget_waits_and_stores_nothing(
    objects: LocalObjectStore, market: FakeMarketData
) -> None:
    session_prices("AAPL", FRIDAY, objects, market)
    market.error = BudgetExhaustedError("25 of 25 requests used today")

    step = session_prices("AAPL", MONDAY, objects, market)

    assert step == Skipped("AAPL waits for tomorrow's market-data budget: 25 of 25 requests used today")
    assert read_prices(objects, "AAPL", MONDAY) == (None, {})
    history, _ = read_prices(objects, "AAPL", FRIDAY)
    assert history is not None and history["date"].iloc[-1] == pd.Timestamp(FRIDAY)


def test_a_refused_key_names_the_variable_that_holds_it(
    objects: LocalObjectStore, market: FakeMarketData
) -> None:
    market.source = "alphavantage"
    market.error = InvalidApiKeyError("apikey is invalid or missing")

    step = session_prices("AAPL", FRIDAY, objects, market)

    assert step == Refused(
        "AAPL: AlphaVantage refused the key in ALPHAVANTAGE_API_KEY: apikey is invalid or missing"
    )
    assert read_prices(objects, "AAPL", FRIDAY) == (None, {})
