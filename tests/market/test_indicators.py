import math

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.market import indicators


@pytest.fixture(scope="module")
def walk() -> pd.Series:
    rng = np.random.default_rng(11)
    return pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, 300))))


@pytest.fixture(scope="module")
def volume() -> pd.Series:
    rng = np.random.default_rng(12)
    return pd.Series(rng.integers(1_000, 50_000, 300))


def reference_ema(values: np.ndarray, period: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    start = int(np.flatnonzero(~np.isnan(values))[0])
    alpha = 2.0 / (period + 1)
    seed = start + period - 1
    out[seed] = sum(values[start : seed + 1]) / period
    for i in range(seed + 1, len(values)):
        out[i] = out[i - 1] + alpha * (values[i] - out[i - 1])
    return out


def reference_rsi(values: np.ndarray, period: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    gains = [max(values[i] - values[i - 1], 0.0) for i in range(1, len(values))]
    losses = [max(values[i - 1] - values[i], 0.0) for i in range(1, len(values))]
    average_gain = sum(gains[:period]) / period
    average_loss = sum(losses[:period]) / period
    out[period] = 100.0 * average_gain / (average_gain + average_loss)
    for i in range(period + 1, len(values)):
        average_gain = (average_gain * (period - 1) + gains[i - 1]) / period
        average_loss = (average_loss * (period - 1) + losses[i - 1]) / period
        out[i] = 100.0 * average_gain / (average_gain + average_loss)
    return out


def reference_rolling(values: np.ndarray, window: int, statistic) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i in range(window - 1, len(values)):
        chunk = values[i - window + 1 : i + 1]
        if not np.isnan(chunk).any():
            out[i] = statistic(chunk)
    return out


def reference_log_returns(values: np.ndarray, periods: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i in range(periods, len(values)):
        out[i] = math.log(values[i] / values[i - periods])
    return out


def assert_matches(actual: pd.Series, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(actual.to_numpy()), np.isnan(expected))
    np.testing.assert_allclose(actual.to_numpy(), expected, rtol=1e-10, atol=1e-12)


def test_ema_hand_computed():
    # alpha = 0.5; seed = mean(1, 2, 3) = 2; then 2 + 0.5 * (10 - 2) = 6; 6 + 0.5 * (4 - 6) = 5
    result = indicators.ema(pd.Series([1.0, 2.0, 3.0, 10.0, 4.0]), 3)
    assert_matches(result, np.array([np.nan, np.nan, 2.0, 6.0, 5.0]))


def test_rsi_hand_computed():
    # changes +1 -1 +2 | -1 +2: first averages gain 1, loss 1/3 -> 75; then Wilder recursion
    result = indicators.rsi(pd.Series([10.0, 11.0, 10.0, 12.0, 11.0, 13.0]), 3)
    assert_matches(result, np.array([np.nan, np.nan, np.nan, 75.0, 600.0 / 11.0, 75.0]))


def test_rsi_matches_wilder_loop(walk):
    assert_matches(indicators.rsi(walk, 14), reference_rsi(walk.to_numpy(), 14))


def test_rsi_is_neutral_on_flat_prices_and_bounded(walk):
    flat = indicators.rsi(pd.Series(np.full(30, 50.0)), 14)
    assert (flat.dropna() == 50.0).all()
    values = indicators.rsi(walk, 14).dropna()
    assert ((values >= 0.0) & (values <= 100.0)).all()


def test_ema_sma_dema_match_loops(walk):
    values = walk.to_numpy()
    ema = reference_ema(values, 10)
    assert_matches(indicators.ema(walk, 10), ema)
    assert_matches(indicators.sma(walk, 10), reference_rolling(values, 10, np.mean))
    assert_matches(indicators.dema(walk, 10), 2.0 * ema - reference_ema(ema, 10))
    assert indicators.dema(walk, 10).first_valid_index() == 18


def test_macd_matches_loops(walk):
    values = walk.to_numpy()
    line = reference_ema(values, 12) - reference_ema(values, 26)
    signal = reference_ema(line, 9)
    result = indicators.macd(walk)
    assert list(result.columns) == ["macd", "macd_signal", "macd_hist"]
    assert_matches(result["macd"], line)
    assert_matches(result["macd_signal"], signal)
    assert_matches(result["macd_hist"], line - signal)
    assert result["macd_signal"].first_valid_index() == 33


def test_bollinger_pct_b_uses_population_std(walk):
    def pct_b(chunk: np.ndarray) -> float:
        middle, spread = chunk.mean(), chunk.std(ddof=0)
        return (chunk[-1] - (middle - 2 * spread)) / (4 * spread)

    assert_matches(indicators.bollinger_pct_b(walk), reference_rolling(walk.to_numpy(), 20, pct_b))
    assert (indicators.bollinger_pct_b(pd.Series(np.full(25, 7.0))).dropna() == 0.5).all()


def test_log_returns_and_volatility(walk):
    values = walk.to_numpy()
    for periods in (1, 5, 10):
        assert_matches(indicators.log_return(walk, periods), reference_log_returns(values, periods))
    daily = reference_log_returns(values, 1)
    volatility = reference_rolling(daily, 20, lambda chunk: chunk.std(ddof=1))
    assert_matches(indicators.rolling_volatility(walk), volatility)
    assert_matches(indicators.rolling_volatility(walk, annualize=True), volatility * math.sqrt(252))


def test_volume_zscore(volume):
    def zscore(chunk: np.ndarray) -> float:
        return (chunk[-1] - chunk.mean()) / chunk.std(ddof=1)

    expected = reference_rolling(volume.to_numpy(dtype=float), 20, zscore)
    assert_matches(indicators.volume_zscore(volume), expected)
    assert (indicators.volume_zscore(pd.Series(np.full(25, 900))).dropna() == 0.0).all()


@pytest.mark.parametrize(
    "indicator",
    [
        lambda s: indicators.rsi(s, 14),
        lambda s: indicators.ema(s, 10),
        lambda s: indicators.sma(s, 10),
        lambda s: indicators.dema(s, 10),
        lambda s: indicators.macd(s)["macd_signal"],
        indicators.bollinger_pct_b,
        lambda s: indicators.log_return(s, 5),
        indicators.rolling_volatility,
        indicators.volume_zscore,
    ],
)
def test_indicators_are_point_in_time(walk, indicator):
    full = indicator(walk)
    for end in (40, 97, 150):
        pd.testing.assert_series_equal(indicator(walk.iloc[:end]), full.iloc[:end], rtol=1e-12)
