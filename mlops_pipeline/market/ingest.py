"""Incremental daily-price ingestion for one ticker: decide what to fetch, fetch, merge.

One request per ticker per day at most: if the stored history already reaches the as-of date,
nothing is requested. A first run bootstraps the history (the full series with a premium key or
the sandbox, the latest 100 sessions with a free key); later runs fetch the compact window and
merge it into the stored, append-only history.

A split-adjusted history (from a premium key, or seeded with ``mlops market import``) can also be
extended with a free key: the compact window of raw prices (TIME_SERIES_DAILY) is fetched and only
its sessions after the stored last date are appended. Stored rows are kept as they are. Split
coefficients of the appended sessions are inferred from the raw prices (:func:`infer_splits` over
the stored last row and the new rows); their ``adjusted_close`` is the close adjusted for inferred
splits among them (the close itself after the last one), their dividend is 0 because the free
series carries no dividend data, and the stored ``adjusted_close`` values are re-adjusted for every
inferred new split, so the history stays adjusted. Sessions older than the compact window
(a gap of more than 100 sessions) stay missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from mlops_pipeline.market.alphavantage import DailySeries, OutputSize
from mlops_pipeline.market.calendar import trading_days
from mlops_pipeline.market.history import HistoryMerge, infer_splits, merge_history, split_adjust
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


def plan_ingest(
    stored_last: date | None, as_of: date, premium: bool, stored_adjusted: bool = True
) -> IngestPlan:
    """What to request for a ticker whose stored history ends at ``stored_last``.

    ``adjusted`` of the plan is what is requested (adjusted prices need a premium key). With a free
    key and an adjusted stored history, the plan is a compact raw request whose new sessions extend
    the adjusted history (:func:`ingest_prices` infers their splits).
    """
    if stored_last is not None and stored_last >= as_of:
        return IngestPlan(
            False, "compact", stored_adjusted, f"stored history already reaches {as_of}; no request"
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
    if stored_adjusted and not premium:
        reason += " (raw prices with a free key, appended to the adjusted history with inferred splits)"
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
    """Bring ``stored`` up to ``as_of`` with at most one request; rows after ``as_of`` are ignored.

    A raw series fetched for an adjusted stored history only extends it (:func:`extend_adjusted_history`);
    the result stays adjusted.
    """
    history = empty_price_frame() if stored is None or stored.empty else conform_price_frame(stored)
    stored_last = None if history.empty else history["date"].iloc[-1].date()
    plan = plan_ingest(stored_last, as_of, premium, stored_adjusted)
    empty_revisions = pd.DataFrame(columns=["date", "column", "old", "new"])
    if not plan.fetch:
        return IngestResult(history, plan, 0, 0, empty_revisions, adjusted=stored_adjusted)
    series = fetch(symbol, plan.outputsize, plan.adjusted)
    incoming = series.frame[series.frame["date"] <= pd.Timestamp(as_of)]
    if stored_adjusted and not series.adjusted and not history.empty:
        merged = extend_adjusted_history(history, incoming)
        adjusted = True
    else:
        upgrading = series.adjusted and not stored_adjusted
        # A raw-price history upgraded to adjusted prices is replaced, not merged
        # (every adjusted value differs).
        merged = merge_history(empty_price_frame() if upgrading else history, incoming)
        adjusted = series.adjusted
    return IngestResult(
        merged.history,
        plan,
        series.requests_used,
        merged.appended,
        merged.revisions,
        adjusted=adjusted,
    )


def extend_adjusted_history(history: pd.DataFrame, raw: pd.DataFrame) -> HistoryMerge:
    """Append the sessions of the raw-price frame ``raw`` dated after the adjusted ``history``'s last row.

    Every row of ``history`` is kept as it is, except that its ``adjusted_close`` is re-adjusted for
    splits inferred in the appended rows; ``raw`` rows on or before the last stored date are ignored
    (so no revisions are reported). Split coefficients are inferred with :func:`infer_splits` over the
    stored last row and the new rows (raw open and close); the new rows get ``dividend_amount`` 0 and
    an ``adjusted_close`` equal to their close divided by the inferred splits after them.
    """
    stored = conform_price_frame(history)
    if stored.empty:
        raise ValueError("extend_adjusted_history needs a stored history to extend")
    new = conform_price_frame(raw)
    new = new[new["date"] > stored["date"].iloc[-1]]
    inferred = infer_splits(pd.concat([stored.iloc[[-1]], new], ignore_index=True)).frame.iloc[1:]
    inferred = inferred.assign(dividend_amount=0.0)
    inferred["adjusted_close"] = split_adjust(inferred)["close"].to_numpy()
    return merge_history(stored, inferred)
