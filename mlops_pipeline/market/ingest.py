"""Incremental daily-price ingestion for one ticker: decide what to fetch, fetch, merge.

One request per ticker per day at most: if the stored history already reaches the as-of date,
nothing is requested. A first run bootstraps the history (the full series with a premium key or
the sandbox, the latest 100 sessions with a free key); later runs fetch the compact window and
merge it into the stored, append-only history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from mlops_pipeline.market.alphavantage import DailySeries, OutputSize
from mlops_pipeline.market.calendar import trading_days
from mlops_pipeline.market.history import merge_history
from mlops_pipeline.market.schema import conform_price_frame, empty_price_frame

COMPACT_ROWS = 100


@dataclass(frozen=True)
class IngestPlan:
    fetch: bool
    outputsize: OutputSize
    adjusted: bool
    reason: str


@dataclass(frozen=True)
class IngestResult:
    history: pd.DataFrame
    plan: IngestPlan
    api_calls: int
    appended: int
    revisions: pd.DataFrame
    adjusted: bool

    @property
    def first_date(self) -> date | None:
        return None if self.history.empty else self.history["date"].iloc[0].date()

    @property
    def last_date(self) -> date | None:
        return None if self.history.empty else self.history["date"].iloc[-1].date()


Fetch = Callable[[str, OutputSize, bool], DailySeries]


class IngestError(RuntimeError):
    """The stored history cannot be extended with the configured source."""


def plan_ingest(
    stored_last: date | None, as_of: date, premium: bool, stored_adjusted: bool = True
) -> IngestPlan:
    """What to request for a ticker whose stored history ends at ``stored_last``."""
    if stored_last is not None and stored_last >= as_of:
        return IngestPlan(
            False, "compact", stored_adjusted, f"stored history already reaches {as_of}; no request"
        )
    if stored_last is not None and stored_adjusted and not premium:
        raise IngestError(
            "the stored history is split-adjusted (premium source) but the key is not premium; "
            "set MLOPS_ALPHAVANTAGE_PREMIUM=true or delete the ticker's history to rebuild it"
        )
    if stored_last is not None and premium and not stored_adjusted:
        return IngestPlan(True, "full", True, "upgrading a raw-price history to the full adjusted history")
    if stored_last is None:
        if premium:
            return IngestPlan(True, "full", True, "bootstrap: full adjusted history")
        return IngestPlan(
            True, "compact", False,
            f"bootstrap with a free key: only the latest {COMPACT_ROWS} sessions are available "
            "(a premium key gets the full history)",
        )  # fmt: skip
    missing = len(trading_days(stored_last, as_of)) - 1
    if missing > COMPACT_ROWS and premium:
        return IngestPlan(True, "full", True, f"{missing} sessions missing: refetching the full history")
    reason = f"{missing} new session(s) since {stored_last}"
    if missing > COMPACT_ROWS:
        reason += f"; only the latest {COMPACT_ROWS} are available with a free key, older ones stay missing"
    return IngestPlan(True, "compact", premium, reason)


def ingest_prices(
    symbol: str,
    stored: pd.DataFrame | None,
    stored_adjusted: bool,
    as_of: date,
    premium: bool,
    fetch: Fetch,
) -> IngestResult:
    """Bring ``stored`` up to ``as_of`` with at most one request; rows after ``as_of`` are ignored."""
    history = empty_price_frame() if stored is None or stored.empty else conform_price_frame(stored)
    stored_last = None if history.empty else history["date"].iloc[-1].date()
    plan = plan_ingest(stored_last, as_of, premium, stored_adjusted)
    empty_revisions = pd.DataFrame(columns=["date", "column", "old", "new"])
    if not plan.fetch:
        return IngestResult(history, plan, 0, 0, empty_revisions, adjusted=stored_adjusted)
    series = fetch(symbol, plan.outputsize, plan.adjusted)
    incoming = series.frame[series.frame["date"] <= pd.Timestamp(as_of)]
    upgrading = series.adjusted and not stored_adjusted
    # A raw-price history upgraded to adjusted prices is replaced, not merged (every adjusted value differs).
    merged = merge_history(empty_price_frame() if upgrading else history, incoming)
    return IngestResult(
        merged.history,
        plan,
        series.requests_used,
        merged.appended,
        merged.revisions,
        adjusted=series.adjusted,
    )
