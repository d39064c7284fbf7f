"""Technical indicators as pure, vectorized functions of a price or volume series.

Every function is point-in-time: the value on row t depends only on rows up to and including t, so a
series truncated at t yields the same values up to t. Rows without enough history are NaN. Inputs are
expected in ascending date order without gaps in the values (NaN only as leading warm-up).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252


def _sma_seeded_ewm(series: pd.Series, period: int, alpha: float) -> pd.Series:
    """Recursive average y_t = (1 - alpha) * y_{t-1} + alpha * x_t seeded with the SMA of the first
    ``period`` values (counted from the first non-NaN value), as TA-Lib seeds EMA and Wilder averages."""
    values = series.to_numpy(dtype="float64")
    result = np.full(len(values), np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) >= period:
        seed_row = valid[0] + period - 1
        recursion_input = values[seed_row:].copy()
        recursion_input[0] = values[valid[0] : seed_row + 1].mean()
        result[seed_row:] = pd.Series(recursion_input).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return pd.Series(result, index=series.index)


def sma(series: pd.Series, period: int) -> pd.Series:
    """Simple moving average over ``period`` rows."""
    return series.rolling(period, min_periods=period).mean()


def ema(series: pd.Series, period: int) -> pd.Series:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the SMA of the first ``period``
    values (TA-Lib's convention); the first value is on row ``period - 1``."""
    return _sma_seeded_ewm(series, period, alpha=2.0 / (period + 1))


def dema(series: pd.Series, period: int) -> pd.Series:
    """Double exponential moving average 2 * EMA - EMA(EMA); the first value is on row 2 * (period - 1)."""
    single = ema(series, period)
    return 2.0 * single - ema(single, period)


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    """Relative strength index with Wilder's smoothing, as TA-Lib and AlphaVantage define it.

    The first average gain/loss is the simple mean of the first ``period`` changes, then
    avg_t = (avg_{t-1} * (period - 1) + x_t) / period. The first value is on row ``period``.
    Where prices did not move at all over the averaging (both averages 0) the RSI is 50.
    """
    change = close.diff()
    average_gain = _sma_seeded_ewm(change.clip(lower=0.0), period, alpha=1.0 / period)
    average_loss = _sma_seeded_ewm(-change.clip(upper=0.0), period, alpha=1.0 / period)
    total = average_gain + average_loss
    strength = 100.0 * average_gain / total.where(total != 0.0)
    return strength.where((total != 0.0) | total.isna(), 50.0)


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD line (EMA(fast) - EMA(slow)), its signal line (EMA(signal) of the line) and histogram.

    Columns ``macd``, ``macd_signal``, ``macd_hist``. Each EMA is seeded with the SMA of its first values,
    so the line starts on row ``slow - 1`` and the signal on row ``slow + signal - 2``. TA-Lib seeds the
    fast EMA later (aligned with the slow one); early values differ slightly and converge within a few
    dozen rows.
    """
    line = ema(close, fast) - ema(close, slow)
    signal_line = ema(line, signal)
    return pd.DataFrame({"macd": line, "macd_signal": signal_line, "macd_hist": line - signal_line})


def bollinger_pct_b(close: pd.Series, period: int = 20, num_std: float = 2.0) -> pd.Series:
    """Bollinger %B: (close - lower band) / (upper band - lower band).

    Bands are SMA(period) ± ``num_std`` population standard deviations (ddof=0, as TA-Lib computes
    them). 0 at the lower band, 1 at the upper band; 0.5 where the bands collapse (no price movement).
    """
    middle = sma(close, period)
    width = 2.0 * num_std * close.rolling(period, min_periods=period).std(ddof=0)
    lower = middle - width / 2.0
    pct_b = (close - lower) / width.where(width != 0.0)
    return pct_b.where((width != 0.0) | width.isna(), 0.5)


def log_return(close: pd.Series, periods: int = 1) -> pd.Series:
    """Log return over ``periods`` rows: log(close_t / close_{t - periods})."""
    return np.log(close / close.shift(periods))


def rolling_volatility(
    close: pd.Series,
    window: int = 20,
    *,
    annualize: bool = False,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> pd.Series:
    """Sample standard deviation (ddof=1) of 1-day log returns over ``window`` rows, first on row
    ``window``; multiplied by sqrt(periods_per_year) when ``annualize``."""
    volatility = log_return(close).rolling(window, min_periods=window).std(ddof=1)
    return volatility * np.sqrt(periods_per_year) if annualize else volatility


def volume_zscore(volume: pd.Series, window: int = 20) -> pd.Series:
    """(volume - rolling mean) / rolling sample standard deviation (ddof=1) over ``window`` rows
    including today; 0 where the volume did not vary over the window."""
    values = volume.astype("float64")
    rolling = values.rolling(window, min_periods=window)
    spread = rolling.std(ddof=1)
    zscore = (values - rolling.mean()) / spread.where(spread != 0.0)
    return zscore.where((spread != 0.0) | spread.isna(), 0.0)
