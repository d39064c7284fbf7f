from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.market.calendar import trading_days
from mlops_pipeline.market.schema import PRICE_COLUMNS
from mlops_pipeline.sandbox.market import SyntheticMarket, UnknownSymbolError

END = date(2024, 6, 14)
RAW_COLUMNS = ["date", "open", "high", "low", "close", "volume", "dividend_amount", "split_coefficient"]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket()


def adjustment_ratio(frame: pd.DataFrame) -> pd.Series:
    return frame["adjusted_close"] / frame["close"]


def test_history_is_a_canonical_price_frame(market: SyntheticMarket) -> None:
    history = market.history("MSFT", END)

    assert list(history.columns) == list(PRICE_COLUMNS)
    assert history.dtypes.astype(str).to_dict() == PRICE_COLUMNS
    assert history["date"].is_monotonic_increasing


def test_history_is_deterministic_per_seed() -> None:
    first = SyntheticMarket(seed=11).history("KO", END)
    again = SyntheticMarket(seed=11).history("KO", END)
    other_seed = SyntheticMarket(seed=12).history("KO", END)

    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["close"], other_seed["close"])


def test_symbols_have_different_paths(market: SyntheticMarket) -> None:
    assert not np.allclose(market.history("KO", END)["close"], market.history("PEP", END)["close"])


def test_shorter_history_is_an_exact_prefix_of_raw_prices() -> None:
    short = SyntheticMarket().history("XOM", date(2012, 5, 4))
    long = SyntheticMarket().history("XOM", END)

    pd.testing.assert_frame_equal(short[RAW_COLUMNS], long[RAW_COLUMNS].iloc[: len(short)])


def test_history_has_exactly_the_nyse_sessions(market: SyntheticMarket) -> None:
    history = market.history("IBM", END)

    assert pd.DatetimeIndex(history["date"]).equals(trading_days(date(2000, 1, 3), END))
    assert pd.Timestamp("2024-03-29") not in set(history["date"])


def test_history_ends_at_the_last_session_on_or_before_end(market: SyntheticMarket) -> None:
    assert market.history("IBM", date(2024, 7, 4))["date"].iloc[-1] == pd.Timestamp("2024-07-03")
    assert market.history("IBM", date(1999, 12, 31)).empty


def test_ohlc_are_consistent(market: SyntheticMarket) -> None:
    history = market.history("TSLA", END)

    assert (history["low"] <= history[["open", "close"]].min(axis=1)).all()
    assert (history["high"] >= history[["open", "close"]].max(axis=1)).all()
    assert (history["low"] > 0).all()
    assert (history["volume"] > 0).all()


def test_split_drops_raw_prices_and_keeps_the_adjusted_series_continuous(market: SyntheticMarket) -> None:
    history = market.history("AAPL", END).set_index("date")
    before, split_day = history.loc["2020-08-28"], history.loc["2020-08-31"]

    assert split_day["split_coefficient"] == 4.0
    assert 3.0 < before["close"] / split_day["close"] < 5.5
    assert 0.8 < before["adjusted_close"] / split_day["adjusted_close"] < 1.25
    assert split_day["volume"] / before["volume"] > 1.5
    ratio = adjustment_ratio(history)
    assert ratio.loc["2020-08-28"] / ratio.loc["2020-08-31"] == pytest.approx(0.25, rel=1e-3)


def test_adjusted_close_follows_alphavantage(market: SyntheticMarket) -> None:
    history = market.history("NVDA", END)
    ratio = adjustment_ratio(history).to_numpy()
    events = (history["split_coefficient"] != 1.0) | (history["dividend_amount"] > 0)

    assert history["adjusted_close"].iloc[-1] == history["close"].iloc[-1]
    unchanged = ~events.to_numpy()[1:]
    np.testing.assert_allclose(ratio[:-1][unchanged], ratio[1:][unchanged], rtol=2e-3)
    # Two splits (4:1 and 10:1) lie ahead of the first session.
    assert ratio[0] < 1 / 40


def test_dividends_adjust_earlier_closes(market: SyntheticMarket) -> None:
    payer = next(
        symbol
        for symbol in ("KO", "PEP", "XOM", "IBM", "MSFT", "JNJ", "PG")
        if (market.history(symbol, END)["dividend_amount"] > 0).any()
    )
    history = market.history(payer, END)
    ex_date = int(np.flatnonzero(history["dividend_amount"] > 0)[-1])
    ratio = adjustment_ratio(history)
    expected = 1 - history["dividend_amount"].iloc[ex_date] / history["close"].iloc[ex_date - 1]

    assert ratio.iloc[ex_date - 1] / ratio.iloc[ex_date] == pytest.approx(expected, rel=1e-3)


def test_adjusted_close_changes_when_a_later_split_enters_the_window(market: SyntheticMarket) -> None:
    before = market.history("AAPL", date(2020, 8, 28)).set_index("date")
    after = market.history("AAPL", date(2020, 8, 31)).set_index("date")

    assert before.loc["2020-08-28", "adjusted_close"] == before.loc["2020-08-28", "close"]
    assert after.loc["2020-08-28", "adjusted_close"] == pytest.approx(
        before.loc["2020-08-28", "close"] / 4, abs=1e-4
    )


def test_volatility_regimes_are_visible(market: SyntheticMarket) -> None:
    returns = np.log(market.history("MSFT", END)["adjusted_close"]).diff()
    rolling_vol = returns.rolling(63).std().dropna()

    assert rolling_vol.quantile(0.95) > 2 * rolling_vol.quantile(0.05)


def test_volume_rises_with_absolute_returns(market: SyntheticMarket) -> None:
    history = market.history("MSFT", END)
    absolute_return = np.log(history["adjusted_close"]).diff().abs()

    assert absolute_return.corr(history["volume"].astype(float), method="spearman") > 0.3


def test_custom_split_table() -> None:
    market = SyntheticMarket(splits={"MSFT": [(date(2010, 6, 1), 2.0)]})

    assert market.bar("MSFT", date(2010, 6, 1)).split_coefficient == 2.0
    assert (market.history("AAPL", END)["split_coefficient"] == 1.0).all()


def test_split_on_a_non_trading_day_is_rejected() -> None:
    with pytest.raises(ValueError, match="trading day"):
        SyntheticMarket(splits={"MSFT": [(date(2024, 7, 4), 2.0)]})


@pytest.mark.parametrize(
    ("symbol", "listed"), [("AAPL", True), ("ibm", True), ("ZZTOP", False), ("INVALID", False)]
)
def test_default_universe(market: SyntheticMarket, symbol: str, listed: bool) -> None:
    assert market.is_listed(symbol) is listed


def test_unknown_symbols_raise(market: SyntheticMarket) -> None:
    with pytest.raises(UnknownSymbolError):
        market.history("ZZZ", END)


def test_restricted_universe() -> None:
    market = SyntheticMarket(listed_symbols=frozenset({"AAPL"}))

    assert market.is_listed("AAPL")
    assert not market.is_listed("MSFT")


def test_bar_and_latest_close(market: SyntheticMarket) -> None:
    row = market.history("AAPL", END).iloc[-1]
    bar = market.bar("AAPL", END)

    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
    )
    assert market.latest_close("AAPL", date(2024, 6, 16)) == bar.close
    with pytest.raises(ValueError, match="no session"):
        market.bar("AAPL", date(2024, 7, 4))


@pytest.mark.parametrize("symbol", ["AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "GOOGL", "IBM", "JPM", "XOM"])
def test_returns_have_the_stylized_facts_of_equity_returns(market: SyntheticMarket, symbol: str) -> None:
    returns = np.log(market.history(symbol, END)["adjusted_close"]).diff().dropna()
    assert abs(returns.autocorr(1)) <= 0.05  # next to no linear signal, as on real prices
    assert returns.kurt() > 3.0  # fat tails
    absolute = returns.abs()
    assert min(absolute.autocorr(lag) for lag in (1, 5, 20)) > 0.05  # volatility clustering
    assert 0.12 < returns.std() * np.sqrt(252) < 0.6  # an equity's annual volatility
