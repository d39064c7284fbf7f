"""Synthetic canonical price frames on real NYSE trading days, for the market tests."""

from __future__ import annotations

import exchange_calendars
import numpy as np
import pandas as pd

from mlops_pipeline.market.schema import conform_price_frame


def nyse_sessions(start: str, count: int) -> pd.DatetimeIndex:
    """The first ``count`` XNYS sessions on or after ``start``."""
    calendar = exchange_calendars.get_calendar("XNYS", start="2015-01-01", end="2030-12-31")
    sessions = calendar.sessions[calendar.sessions >= pd.Timestamp(start)][:count]
    return pd.DatetimeIndex(sessions.to_numpy())


def random_walk_prices(
    days: int = 260, *, start: str = "2023-01-03", seed: int = 7, first_close: float = 100.0
) -> pd.DataFrame:
    """A raw price history without splits or dividends (``adjusted_close == close``)."""
    rng = np.random.default_rng(seed)
    close = first_close * np.exp(np.cumsum(rng.normal(0.0003, 0.015, days)))
    open_ = np.concatenate([[first_close], close[:-1]]) * np.exp(rng.normal(0.0, 0.004, days))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, days))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, days))
    return conform_price_frame(
        pd.DataFrame(
            {
                "date": nyse_sessions(start, days),
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "adjusted_close": close,
                "volume": rng.integers(1_000_000, 5_000_000, days),
                "dividend_amount": 0.0,
                "split_coefficient": 1.0,
            }
        )
    )


def with_split(
    prices: pd.DataFrame, ex_date: str, coefficient: float, *, provider_adjusted: bool
) -> pd.DataFrame:
    """``prices`` as traded if a ``coefficient``:1 split took effect on ``ex_date``.

    Raw prices from the ex-date on are divided by the coefficient and volumes multiplied. With
    ``provider_adjusted`` the frame carries the split coefficient and an ``adjusted_close`` that is
    continuous (premium source); without, it is raw only (``adjusted_close == close``, no coefficient).
    """
    traded = prices.copy()
    after = traded["date"] >= pd.Timestamp(ex_date)
    for column in ("open", "high", "low", "close"):
        traded.loc[after, column] = traded.loc[after, column] / coefficient
    traded.loc[after, "volume"] = (traded.loc[after, "volume"] * coefficient).round().astype("int64")
    if provider_adjusted:
        traded.loc[traded["date"] == pd.Timestamp(ex_date), "split_coefficient"] = coefficient
        traded["adjusted_close"] = prices["adjusted_close"] / coefficient
    else:
        traded["adjusted_close"] = traded["close"]
    return conform_price_frame(traded)
