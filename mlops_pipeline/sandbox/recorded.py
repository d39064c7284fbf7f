"""Recorded daily history served by the sandbox: real (or once-recorded) prices, replayed offline.

The recording format and its checks are :mod:`mlops_pipeline.market.recording`. The sandbox serves
a recorded symbol the way it serves a synthetic one: up to the request's today, with the adjusted
close recomputed for the events up to that day (a replayed session never sees a later split or
dividend), and the broker fills at the recorded prices. A session missing from a file is a gap,
served as AlphaVantage serves gaps: the row is simply not there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pandas as pd

from mlops_pipeline.sandbox.market import (
    DailyBar,
    Market,
    NoBarError,
    UnknownSymbolError,
    bar_on,
    close_on_or_before,
    window_until,
)


class RecordedMarket:
    """Recorded symbols from their files; every other symbol from ``fallback`` (``None``: unlisted)."""

    def __init__(self, recordings: Mapping[str, pd.DataFrame], fallback: Market | None = None) -> None:
        self._recordings = {symbol.upper(): frame for symbol, frame in recordings.items()}
        self._fallback = fallback

    @property
    def recorded_symbols(self) -> frozenset[str]:
        return frozenset(self._recordings)

    def is_listed(self, symbol: str) -> bool:
        symbol = symbol.upper()
        if symbol in self._recordings:
            return True
        return self._fallback is not None and self._fallback.is_listed(symbol)

    def history(self, symbol: str, end: date) -> pd.DataFrame:
        raw = self._recordings.get(symbol.upper())
        return self._other(symbol).history(symbol, end) if raw is None else window_until(raw, end)

    def bar(self, symbol: str, day: date) -> DailyBar:
        raw = self._recordings.get(symbol.upper())
        if raw is None:
            return self._other(symbol).bar(symbol, day)
        bar = bar_on(raw, day)
        if bar is None:
            raise NoBarError(f"the recording of {symbol.upper()} has no bar on {day}")
        return bar

    def latest_close(self, symbol: str, day: date) -> float:
        raw = self._recordings.get(symbol.upper())
        if raw is None:
            return self._other(symbol).latest_close(symbol, day)
        close = close_on_or_before(raw, day)
        if close is None:
            raise NoBarError(f"the recording of {symbol.upper()} starts after {day}")
        return close

    def _other(self, symbol: str) -> Market:
        if self._fallback is None:
            raise UnknownSymbolError(f"unknown symbol: {symbol!r} (not in the recording)")
        return self._fallback
