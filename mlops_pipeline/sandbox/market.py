"""A deterministic synthetic stock market for offline runs, tests and replays.

Every listed symbol has one daily price path over all NYSE sessions from ``start`` to the end of
the trading calendar. The path depends only on ``(seed, symbol, start, splits)``, never on the
date a caller asks up to, so a shorter history is an exact prefix of a longer one (raw columns).

Model, per session:

* a market-wide two-state volatility regime (calm / turbulent, geometric run lengths);
* log return = drift + beta * market shock + idiosyncratic shock, with Student-t innovations;
  the idiosyncratic part is AR(1) with a very weak next-day reversal (coefficient
  :data:`IDIOSYNCRATIC_REVERSAL`). Calibrated to the stylized facts of daily equity returns: the
  lag-1 autocorrelation of returns stays within +-0.05 (there is next to no signal to find, as on
  real prices), excess kurtosis is well above 3 (fat tails), and absolute returns stay correlated
  for weeks (volatility clustering, from the regimes); ``tests/sandbox/test_sandbox_market.py``
  checks all three;
* an overnight gap splits the return into open and intraday parts; high/low extend beyond
  open/close, so ``low <= min(open, close)`` and ``high >= max(open, close)``;
* volume grows with the absolute return;
* about half the symbols pay quarterly dividends (the raw price drops by the dividend on the
  ex-date);
* stock splits from a split table (:data:`DEFAULT_SPLITS` unless given): on the ex-date raw prices
  drop by the split factor, volume rises by it and ``split_coefficient`` holds the factor.

``adjusted_close`` follows AlphaVantage: each close is multiplied by ``1 / split`` and
``1 - dividend / previous close`` for every event after it up to the last row of the window, so
the adjusted series has no split jumps and the last adjusted close equals the last close. Prices
are rounded to cents (adjusted close to 4 decimals), as served on the wire.

Listed symbols: by default any symbol of 1-5 letters, except those starting with ``ZZ`` and those
in ``unknown_symbols``; pass ``listed_symbols`` to restrict the universe.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd

from mlops_pipeline.market.calendar import CALENDAR_END, is_trading_day, trading_days
from mlops_pipeline.market.schema import PRICE_COLUMNS, empty_price_frame

SplitTable = dict[str, list[tuple[date, float]]]

DEFAULT_SPLITS: SplitTable = {
    "AAPL": [(date(2005, 2, 28), 2.0), (date(2014, 6, 9), 7.0), (date(2020, 8, 31), 4.0)],
    "NVDA": [(date(2021, 7, 20), 4.0), (date(2024, 6, 10), 10.0)],
    "TSLA": [(date(2020, 8, 31), 5.0), (date(2022, 8, 25), 3.0)],
    "AMZN": [(date(2022, 6, 6), 20.0)],
    "GOOGL": [(date(2022, 7, 18), 20.0)],
}
# AR(1) coefficient of the idiosyncratic returns: a next-day reversal as weak as real equities show.
IDIOSYNCRATIC_REVERSAL = -0.02
DEFAULT_UNKNOWN_SYMBOLS = frozenset({"INVALID"})
UNKNOWN_SYMBOL_PREFIX = "ZZ"
SYMBOL_PATTERN = re.compile(r"^[A-Z]{1,5}$")

_CALM_MEAN_SESSIONS = 300
_TURBULENT_MEAN_SESSIONS = 45
_MARKET_VOL = (0.007, 0.022)  # daily vol of the market shock, calm / turbulent
_IDIOSYNCRATIC_VOL = (0.010, 0.020)
_STUDENT_T_DF = 5
_SESSIONS_PER_QUARTER = 63
_CACHED_SYMBOLS = 256


class UnknownSymbolError(LookupError):
    """The symbol is not listed in the market."""


class NoBarError(ValueError):
    """The market has no bar for that symbol on that day (no session, or a gap in a recording)."""


@dataclass(frozen=True)
class DailyBar:
    """One raw session of one symbol."""

    day: date
    open: float
    high: float
    low: float
    close: float
    volume: int
    dividend_amount: float
    split_coefficient: float


class Market(Protocol):
    """What the sandbox serves from: daily bars per listed symbol (synthetic or recorded)."""

    def is_listed(self, symbol: str) -> bool: ...

    def history(self, symbol: str, end: date) -> pd.DataFrame:
        """Sessions up to ``end`` inclusive, oldest first, in the canonical price frame, with the
        adjusted close as AlphaVantage would have served it on ``end``."""
        ...

    def bar(self, symbol: str, day: date) -> DailyBar:
        """The raw bar on ``day``; :class:`NoBarError` when there is none."""
        ...

    def latest_close(self, symbol: str, day: date) -> float:
        """The raw close of the last bar on or before ``day``."""
        ...


def adjusted_close(window: pd.DataFrame) -> np.ndarray:
    """AlphaVantage's adjusted close of a raw window (oldest first): each close multiplied by
    ``1 / split`` and ``1 - dividend / previous close`` for every event after it up to the window's
    last row, so the last adjusted close equals the last close; rounded to 4 decimals."""
    close = window["close"].to_numpy()
    previous_close = np.concatenate([[np.nan], close[:-1]])
    dividend_factor = np.ones_like(close)
    dividend_factor[1:] = 1.0 - window["dividend_amount"].to_numpy()[1:] / previous_close[1:]
    event_factor = dividend_factor / window["split_coefficient"].to_numpy()
    later_events = np.append(np.cumprod(event_factor[::-1])[::-1][1:], 1.0)
    return np.round(close * later_events, 4)


def window_until(raw: pd.DataFrame, end: date) -> pd.DataFrame:
    """The raw rows (oldest first, no adjusted close) up to ``end`` inclusive, with AlphaVantage's
    adjusted close as of ``end``, in the canonical price frame."""
    rows = int(raw["date"].searchsorted(pd.Timestamp(end), side="right"))
    if rows == 0:
        return empty_price_frame()
    window = raw.iloc[:rows].copy()
    window["adjusted_close"] = adjusted_close(window)
    return window.loc[:, list(PRICE_COLUMNS)]


def bar_on(raw: pd.DataFrame, day: date) -> DailyBar | None:
    """The raw row of ``day`` as a bar; ``None`` when ``raw`` has no row that day."""
    position = int(raw["date"].searchsorted(pd.Timestamp(day)))
    if position == len(raw) or raw["date"].iloc[position] != pd.Timestamp(day):
        return None
    row = raw.iloc[position]
    return DailyBar(
        day=day,
        open=float(row["open"]),
        high=float(row["high"]),
        low=float(row["low"]),
        close=float(row["close"]),
        volume=int(row["volume"]),
        dividend_amount=float(row["dividend_amount"]),
        split_coefficient=float(row["split_coefficient"]),
    )


def close_on_or_before(raw: pd.DataFrame, day: date) -> float | None:
    """The raw close of the last row on or before ``day``; ``None`` when there is none."""
    position = int(raw["date"].searchsorted(pd.Timestamp(day), side="right")) - 1
    return None if position < 0 else float(raw["close"].iloc[position])


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _unit_student_t(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.standard_t(_STUDENT_T_DF, size) * np.sqrt((_STUDENT_T_DF - 2) / _STUDENT_T_DF)


def _turbulent_regime(rng: np.random.Generator, size: int) -> np.ndarray:
    """Boolean per session: True while the market is in its turbulent regime."""
    mean_lengths = np.tile([_CALM_MEAN_SESSIONS, _TURBULENT_MEAN_SESSIONS], size // 2 + 1)
    run_lengths = rng.geometric(1.0 / mean_lengths)
    states = np.tile([False, True], size // 2 + 1)
    return np.repeat(states, run_lengths)[:size]


class SyntheticMarket:
    """Deterministic daily prices for any listed symbol, in the canonical price frame."""

    def __init__(
        self,
        seed: int = 7,
        start: date = date(2000, 1, 3),
        splits: SplitTable | None = None,
        unknown_symbols: frozenset[str] = DEFAULT_UNKNOWN_SYMBOLS,
        listed_symbols: frozenset[str] | None = None,
    ) -> None:
        self.seed = seed
        self.start = start
        self.unknown_symbols = unknown_symbols
        self.listed_symbols = listed_symbols
        split_table = DEFAULT_SPLITS if splits is None else splits
        self.splits = {symbol: sorted(events) for symbol, events in split_table.items()}
        for symbol, events in self.splits.items():
            for day, factor in events:
                if factor <= 0 or not is_trading_day(day):
                    raise ValueError(f"split of {symbol} on {day} needs a trading day and a positive factor")
        self._sessions = trading_days(start, CALENDAR_END)
        self._raw_paths = functools.lru_cache(maxsize=_CACHED_SYMBOLS)(self._generate_raw_path)

    def is_listed(self, symbol: str) -> bool:
        """Whether ``symbol`` (case-insensitive) trades in this market."""
        symbol = symbol.upper()
        if self.listed_symbols is not None:
            return symbol in self.listed_symbols
        return (
            SYMBOL_PATTERN.match(symbol) is not None
            and not symbol.startswith(UNKNOWN_SYMBOL_PREFIX)
            and symbol not in self.unknown_symbols
        )

    def history(self, symbol: str, end: date) -> pd.DataFrame:
        """Sessions from ``start`` to ``end`` inclusive, oldest first, in the canonical price frame."""
        return window_until(self._raw_paths(self._listed(symbol)), end)

    def bar(self, symbol: str, day: date) -> DailyBar:
        """The raw bar of the session on ``day``; ``NoBarError`` when there is none."""
        bar = bar_on(self._raw_paths(self._listed(symbol)), day)
        if bar is None:
            raise NoBarError(f"no session on {day} (not a trading day or before {self.start})")
        return bar

    def latest_close(self, symbol: str, day: date) -> float:
        """The raw close of the last session on or before ``day``."""
        close = close_on_or_before(self._raw_paths(self._listed(symbol)), day)
        if close is None:
            raise NoBarError(f"no session on or before {day} (the market starts {self.start})")
        return close

    def _listed(self, symbol: str) -> str:
        if not self.is_listed(symbol):
            raise UnknownSymbolError(f"unknown symbol: {symbol!r}")
        return symbol.upper()

    @functools.cached_property
    def _market_shocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-session market shock and turbulent-regime flag, shared by every symbol."""
        rng = _rng(self.seed, "market")
        size = len(self._sessions)
        turbulent = _turbulent_regime(rng, size)
        shock = np.where(turbulent, _MARKET_VOL[1], _MARKET_VOL[0]) * _unit_student_t(rng, size)
        return shock, turbulent

    def _split_coefficients(self, symbol: str) -> np.ndarray:
        coefficients = np.ones(len(self._sessions))
        for day, factor in self.splits.get(symbol, []):
            position = self._sessions.searchsorted(pd.Timestamp(day))
            if position < len(self._sessions) and self._sessions[position] == pd.Timestamp(day):
                coefficients[position] = factor
        return coefficients

    def _generate_raw_path(self, symbol: str) -> pd.DataFrame:
        from scipy.signal import lfilter  # ~0.9 s to import: only a generated path needs it

        rng = _rng(self.seed, symbol)
        size = len(self._sessions)
        market_shock, turbulent = self._market_shocks

        base_price = float(np.exp(rng.uniform(np.log(15), np.log(400))))
        beta = rng.uniform(0.6, 1.4)
        idiosyncratic_scale = rng.uniform(0.7, 1.3)
        drift = rng.uniform(0.0, 0.08) / 252
        base_volume = float(np.exp(rng.uniform(np.log(5e5), np.log(5e7))))
        quarterly_yield = rng.uniform(0.003, 0.01) if rng.random() < 0.5 else 0.0
        first_ex_date = int(rng.integers(1, _SESSIONS_PER_QUARTER + 1))

        idiosyncratic_vol = np.where(turbulent, _IDIOSYNCRATIC_VOL[1], _IDIOSYNCRATIC_VOL[0])
        vol = np.hypot(beta * np.where(turbulent, _MARKET_VOL[1], _MARKET_VOL[0]), idiosyncratic_vol)
        innovations = idiosyncratic_scale * idiosyncratic_vol * _unit_student_t(rng, size)
        idiosyncratic = lfilter([1.0], [1.0, -IDIOSYNCRATIC_REVERSAL], innovations)
        returns = drift + beta * market_shock + idiosyncratic

        is_ex_date = np.zeros(size, dtype=bool)
        if quarterly_yield:
            is_ex_date[first_ex_date::_SESSIONS_PER_QUARTER] = True
        dividend_drop = np.where(is_ex_date, np.log1p(-quarterly_yield), 0.0)
        gap = 0.4 * vol * rng.standard_normal(size) + dividend_drop
        high_extension = 0.6 * vol * np.abs(rng.standard_normal(size))
        low_extension = 0.6 * vol * np.abs(rng.standard_normal(size))
        volume_noise = np.exp(0.3 * rng.standard_normal(size))

        split_coefficient = self._split_coefficients(symbol)
        cumulative_split = np.cumprod(split_coefficient)
        log_start = np.log(base_price * cumulative_split[-1])
        log_close = log_start + np.cumsum(returns + dividend_drop)
        previous_log_close = np.concatenate([[log_start], log_close[:-1]])
        log_open = previous_log_close + gap
        close = np.exp(log_close) / cumulative_split
        open_ = np.exp(log_open) / cumulative_split
        high = np.maximum(open_, close) * np.exp(high_extension)
        low = np.minimum(open_, close) * np.exp(-low_extension)
        volume = base_volume * volume_noise * (1 + 30 * np.abs(returns)) * cumulative_split

        raw_close = np.round(close, 2)
        previous_raw_close = np.concatenate([[np.nan], raw_close[:-1]])
        dividend = np.where(
            is_ex_date, np.maximum(np.round(quarterly_yield * previous_raw_close, 2), 0.01), 0.0
        )
        return pd.DataFrame(
            {
                "date": self._sessions.to_numpy(),
                "open": np.round(open_, 2),
                "high": np.round(high, 2),
                "low": np.round(low, 2),
                "close": raw_close,
                "volume": np.round(volume).astype("int64"),
                "dividend_amount": dividend,
                "split_coefficient": split_coefficient,
            }
        )
