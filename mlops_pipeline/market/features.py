"""The feature table models train on and serve from, built from the canonical daily price frame.

All features are computed locally from adjusted prices (never from unadjusted prices or a provider's
indicator endpoints), so splits leave no discontinuities. Each feature on day t uses only adjusted
prices up to t; the adjustment itself, like the provider's adjusted close, reflects every split and
dividend known when the table is built. The targets on day t describe day t + 1 and are missing on the
last row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from mlops_pipeline.market import indicators
from mlops_pipeline.market.history import split_adjust
from mlops_pipeline.market.schema import conform_price_frame

WINDOW_LENGTH = 10
WINDOW_DECIMALS = 6
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9

FEATURE_COLUMNS: list[str] = [
    "close",
    "open",
    "high",
    "low",
    "volume",
    "rsi_14",
    "ema_10",
    "sma_10",
    "dema_10",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pct_b",
    "log_return_1",
    "log_return_5",
    "log_return_10",
    "volatility_20",
    "volume_z_20",
    "close_window_10",
    "return_window_10",
]
# Space-separated number sequences (Ludwig ``timeseries`` inputs); all other features are numeric.
WINDOW_COLUMNS: list[str] = ["close_window_10", "return_window_10"]
TARGET_COLUMNS: list[str] = ["target_next_close", "target_next_return", "target_next_direction"]
FEATURE_TABLE_COLUMNS: list[str] = ["date", *FEATURE_COLUMNS, *TARGET_COLUMNS]

# Leading rows on which at least one feature is still undefined: the MACD signal line comes last.
WARMUP_ROWS = MACD_SLOW + MACD_SIGNAL - 2


def adjusted_prices(prices: pd.DataFrame) -> pd.DataFrame:
    """Adjusted daily ``date``, ``open``, ``high``, ``low``, ``close`` and ``volume`` for modelling.

    Prices are first split-adjusted from ``split_coefficient`` (``history.split_adjust``; a no-op
    without splits). If the source is adjusted, i.e. ``adjusted_close`` differs from the raw close on
    some row, ``close`` is the provider's ``adjusted_close`` (splits *and* dividends) and open/high/low
    are the raw values scaled by ``adjusted_close / close`` of the same row. A raw-only source stores
    ``adjusted_close == close``; its prices are the split-adjusted ones (splits from the source or
    ``history.infer_splits``, no dividend adjustment). Volume is split-adjusted only.
    """
    raw = conform_price_frame(prices)
    split_adjusted = split_adjust(raw)
    adjusted = split_adjusted.loc[:, ["date", "open", "high", "low", "close"]]
    if not np.allclose(raw["adjusted_close"], raw["close"], rtol=1e-9, atol=0.0):
        scale = raw["adjusted_close"] / raw["close"]
        for column in ("open", "high", "low"):
            adjusted[column] = raw[column] * scale
        adjusted["close"] = raw["adjusted_close"]
    adjusted["volume"] = split_adjusted["volume"].astype("float64")
    return adjusted


def build_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The feature table (``FEATURE_TABLE_COLUMNS``) for a canonical price frame, one row per day."""
    return features_from_adjusted(adjusted_prices(prices))


def features_from_adjusted(adjusted: pd.DataFrame) -> pd.DataFrame:
    """The feature table from ``adjusted_prices`` output (ascending dates)."""
    close = adjusted["close"].reset_index(drop=True)
    volume = adjusted["volume"].reset_index(drop=True)
    one_day_return = indicators.log_return(close, 1)
    next_return = one_day_return.shift(-1)

    table = pd.DataFrame(
        {
            "date": adjusted["date"].to_numpy(),
            "close": close,
            "open": adjusted["open"].to_numpy(),
            "high": adjusted["high"].to_numpy(),
            "low": adjusted["low"].to_numpy(),
            "volume": volume,
            "rsi_14": indicators.rsi(close, 14),
            "ema_10": indicators.ema(close, 10),
            "sma_10": indicators.sma(close, 10),
            "dema_10": indicators.dema(close, 10),
            **indicators.macd(close, MACD_FAST, MACD_SLOW, MACD_SIGNAL),
            "bb_pct_b": indicators.bollinger_pct_b(close, 20, 2.0),
            "log_return_1": one_day_return,
            "log_return_5": indicators.log_return(close, 5),
            "log_return_10": indicators.log_return(close, 10),
            "volatility_20": indicators.rolling_volatility(close, 20),
            "volume_z_20": indicators.volume_zscore(volume, 20),
            "close_window_10": _window_text(close.to_numpy(dtype="float64"), normalize_by_last=True),
            "return_window_10": _window_text(one_day_return.to_numpy(), normalize_by_last=False),
            "target_next_close": close.shift(-1),
            "target_next_return": next_return,
            "target_next_direction": (next_return > 0).astype("Int64").where(next_return.notna()),
        }
    )
    return table.loc[:, FEATURE_TABLE_COLUMNS]


def drop_warmup(features: pd.DataFrame) -> pd.DataFrame:
    """The feature table without its first ``WARMUP_ROWS`` rows, where some features are undefined."""
    return features.iloc[WARMUP_ROWS:].reset_index(drop=True)


def _window_text(values: np.ndarray, *, normalize_by_last: bool) -> pd.Series:
    """For each row, the last ``WINDOW_LENGTH`` values as a space-separated string (oldest first).

    Rows without a full window of defined values are missing (None).
    """
    text = pd.Series(None, index=range(len(values)), dtype="object")
    if len(values) < WINDOW_LENGTH:
        return text
    windows = sliding_window_view(values, WINDOW_LENGTH)
    if normalize_by_last:
        windows = windows / windows[:, -1:]
    complete = ~np.isnan(windows).any(axis=1)
    if not complete.any():
        return text
    row_format = " ".join([f"%.{WINDOW_DECIMALS}f"] * WINDOW_LENGTH)
    rows = np.flatnonzero(complete) + WINDOW_LENGTH - 1
    text.iloc[rows] = [row_format % tuple(window) for window in windows[complete].tolist()]
    return text
