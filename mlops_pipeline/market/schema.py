"""The canonical daily price frame shared by ingestion, the sandbox market, features and checks."""

from __future__ import annotations

import pandas as pd

# Column name -> dtype. ``date`` is a naive, normalized trading date (exchange-local, America/New_York).
# ``open``..``close`` are raw (as traded) prices; ``adjusted_close`` is split- and dividend-adjusted
# as AlphaVantage's TIME_SERIES_DAILY_ADJUSTED defines it; ``split_coefficient`` is 1.0 on days
# without a split (2.0 on the ex-date of a 2:1 split); ``dividend_amount`` is 0.0 without a dividend.
PRICE_COLUMNS: dict[str, str] = {
    "date": "datetime64[ns]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "adjusted_close": "float64",
    "volume": "int64",
    "dividend_amount": "float64",
    "split_coefficient": "float64",
}


def empty_price_frame() -> pd.DataFrame:
    """An empty frame with the canonical price columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in PRICE_COLUMNS.items()})


def conform_price_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the canonical columns, dtypes and ascending unique dates.

    Raises ``ValueError`` naming the missing columns.
    """
    missing = [name for name in PRICE_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"price frame is missing columns: {', '.join(missing)}")
    out = frame.loc[:, list(PRICE_COLUMNS)].copy()
    out["date"] = pd.to_datetime(out["date"]).dt.tz_localize(None).dt.normalize()
    out = out.astype(PRICE_COLUMNS)
    return out.sort_values("date", kind="stable").reset_index(drop=True)
