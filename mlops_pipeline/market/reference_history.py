"""A real daily series that works offline: the S&P 500 index from 1999-01-04 to 2018-12-31
(5,031 sessions), as bundled with the ``arch`` package (a dev dependency: ``pip install -e
".[dev]"``). Tests and ``make bench-recorded`` record it with :func:`write_recording` to replay
real prices without a network or an AlphaVantage key."""

from __future__ import annotations

import pandas as pd

from mlops_pipeline.market.calendar import trading_days

SP500_SYMBOL = "SPX"


def sp500_history() -> pd.DataFrame:
    """The bundled S&P 500 bars in the canonical price frame, on NYSE sessions only (an index pays
    no dividends and never splits, so the adjusted close is the close)."""
    from arch.data import sp500

    raw = sp500.load()
    frame = pd.DataFrame(
        {
            "date": pd.DatetimeIndex(raw.index).normalize(),
            "open": raw["Open"].to_numpy(),
            "high": raw["High"].to_numpy(),
            "low": raw["Low"].to_numpy(),
            "close": raw["Close"].to_numpy(),
            "adjusted_close": raw["Close"].to_numpy(),
            "volume": raw["Volume"].to_numpy().astype("int64"),
            "dividend_amount": 0.0,
            "split_coefficient": 1.0,
        }
    )
    sessions = trading_days(frame["date"].min(), frame["date"].max())
    return frame[frame["date"].isin(sessions)].reset_index(drop=True)
