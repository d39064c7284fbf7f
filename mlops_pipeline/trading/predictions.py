"""Read the serving team's predictions (``predictions/<TICKER>/<session>.parquet`` in the team store).

Only a row whose ``as_of_date`` is the trading date is used; a ticker whose newest row is older
is *stale* and gets no signal (a skipped intent says so).
"""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

from mlops_pipeline.objects import ObjectNotFoundError, Objects
from mlops_pipeline.serving.predictions import prediction_sessions
from mlops_pipeline.team_store import prediction_key, predictions_prefix
from mlops_pipeline.trading.model import Signal, SkippedIntent

REQUIRED_COLUMNS = ("ticker", "as_of_date", "predicted_return", "prob_up")


class PredictionsError(ValueError):
    """A predictions file that does not follow the contract; the message names the file and field."""


def signal_for(frame: pd.DataFrame, key: str, ticker: str, trading_date: date) -> Signal | SkippedIntent:
    """The row of ``trading_date`` as a signal, or why there is none."""
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise PredictionsError(f"{key}: missing column(s) {', '.join(missing)}")
    try:
        as_of = pd.to_datetime(frame["as_of_date"]).dt.date
    except (ValueError, TypeError) as exc:
        raise PredictionsError(f"{key}: as_of_date is not a date column ({exc})") from exc
    rows = frame[as_of == trading_date]
    if rows.empty:
        newest = as_of.max() if len(frame) else None
        return SkippedIntent(ticker, f"stale predictions: newest as_of_date {newest}, need {trading_date}")
    row = rows.iloc[-1]
    return Signal(
        ticker=str(row["ticker"]),
        predicted_return=_number(row["predicted_return"]),
        prob_up=_number(row["prob_up"]),
    )


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def load_signals(
    store: Objects, tickers: list[str], trading_date: date
) -> tuple[list[Signal], list[SkippedIntent]]:
    """Signals of ``trading_date`` for ``tickers``; missing and stale tickers are skipped with a reason."""
    signals: list[Signal] = []
    skipped: list[SkippedIntent] = []
    for ticker in tickers:
        key = prediction_key(ticker, trading_date)
        try:
            frame = store.get_parquet(key)
        except ObjectNotFoundError:
            stored = prediction_sessions(store, ticker)
            reason = (
                f"stale predictions: newest as_of_date {stored[-1]}, need {trading_date}"
                if stored
                else f"no predictions (nothing under {predictions_prefix(ticker)}/)"
            )
            skipped.append(SkippedIntent(ticker, reason))
            continue
        found = signal_for(frame, key, ticker, trading_date)
        if isinstance(found, Signal):
            signals.append(found)
        else:
            skipped.append(found)
    return signals, skipped
