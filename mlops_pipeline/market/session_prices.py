"""A ticker's price snapshot of one session: extend the newest earlier snapshot, check it, store it.

:func:`session_prices` holds every decision of the ``market/prices`` asset: wait for the next
budget day (nothing stored is touched), refuse what the market-data service refused, or the
session's snapshot, stored only when it changed; the asset turns the outcome into metadata and
check results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from mlops_pipeline.market.alphavantage import (
    AlphaVantageError,
    DailyQuotaExceededError,
    DailySeries,
    InvalidApiKeyError,
    InvalidSymbolError,
    OutputSize,
)
from mlops_pipeline.market.budget import BudgetExhaustedError, RequestBudget
from mlops_pipeline.market.checks import CheckOutcome, check_price_history, failed_names
from mlops_pipeline.market.ingest import IngestResult, ingest_prices
from mlops_pipeline.market.store import latest_prices, prices_key
from mlops_pipeline.objects import Objects
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.training.dataset import frame_fingerprint


class MarketData(Protocol):
    """An AlphaVantage-compatible source of daily prices and its request budget."""

    @property
    def source(self) -> str: ...  # "sandbox" or "alphavantage"

    @property
    def premium(self) -> bool: ...  # full, split-adjusted histories

    def fetch_daily(
        self, symbol: str, outputsize: OutputSize, adjusted: bool, session: date
    ) -> DailySeries: ...

    def budget(self) -> RequestBudget: ...


@dataclass(frozen=True)
class Snapshot:
    """The session's history, its checks and the manifest it is stored with."""

    result: IngestResult
    outcomes: list[CheckOutcome]
    manifest: dict[str, Any]
    uri: str
    unchanged: bool  # stored before as it is, complete, no request made: nothing new to record


SessionPrices = Skipped | Refused | Snapshot  # Skipped: the day's request budget is used up


def session_prices(ticker: str, as_of: date, objects: Objects, market_data: MarketData) -> SessionPrices:
    """Bring the newest snapshot of ``ticker`` up to ``as_of`` (one request at most) and store it
    as the session's, unless the session's stored snapshot is the same."""
    stored, manifest, _ = latest_prices(objects, ticker, until=as_of)
    try:
        result = ingest_prices(
            ticker,
            stored,
            bool(manifest.get("adjusted", market_data.premium)),
            as_of,
            market_data.premium,
            lambda symbol, size, adjusted: market_data.fetch_daily(symbol, size, adjusted, as_of),
        )
    except (BudgetExhaustedError, DailyQuotaExceededError) as exc:
        # Not a failure: the ticker waits for the next budget day; nothing stored is touched.
        if isinstance(exc, DailyQuotaExceededError):  # the service's own words say not when
            reset = market_data.budget().reset_note()
            return Skipped(f"{ticker} waits for tomorrow's market-data budget ({reset}): {exc}")
        return Skipped(f"{ticker} waits for tomorrow's market-data budget: {exc}")
    except AlphaVantageError as exc:
        return Refused(_market_data_error(ticker, market_data.source, exc))
    previous = manifest if manifest.get("as_of") == as_of.isoformat() else None
    outcomes = check_price_history(result.history, expected_last_date=as_of)
    new_manifest = {
        "ticker": ticker,
        "adjusted": result.adjusted,
        "source": market_data.source,
        "as_of": as_of.isoformat(),
        "data_version": frame_fingerprint(result.history),
        "failed_checks": failed_names(outcomes),
    }
    key = prices_key(ticker, as_of)
    if result.api_calls or previous != new_manifest:
        uri = objects.put_parquet(key, result.history, new_manifest)
    else:
        uri = objects.uri(key)
    unchanged = previous == new_manifest and not result.api_calls and not new_manifest["failed_checks"]
    return Snapshot(result, outcomes, new_manifest, uri, unchanged)


def _market_data_error(ticker: str, source: str, exc: AlphaVantageError) -> str:
    """One line naming the ticker, the source and, for a refused key, the variable that holds it."""
    key_variable = "ALPHAVANTAGE_API_KEY" if source == "alphavantage" else "the sandbox key"
    if isinstance(exc, InvalidApiKeyError):
        return f"{ticker}: AlphaVantage refused the key in {key_variable}: {exc.message}"
    if isinstance(exc, InvalidSymbolError):
        return (
            f"{ticker}: AlphaVantage refused the request ({exc.message}): {ticker} is not a listed "
            f"symbol, or the key in {key_variable} is not valid"
        )
    return f"{ticker}: {source} market data: {exc}"
