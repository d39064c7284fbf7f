"""Recordings of daily history: folders of ``<SYMBOL>.csv`` files in AlphaVantage's CSV.

Each file is exactly the CSV that AlphaVantage returns for
``function=TIME_SERIES_DAILY_ADJUSTED&datatype=csv``: the header
``timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient``, then one
row per session, newest first. ``mlops market record`` writes them (:func:`write_recording`), the
sandbox serves them (``mlops sandbox serve --recorded DIR``), ``mlops market import`` seeds the
stored history from them.

A malformed file is refused with :class:`RecordingError`, which names the file, the line (counted
from 1, the header included) and the problem.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pandas as pd

from mlops_pipeline.market.alphavantage import (
    DAILY_ADJUSTED,
    AlphaVantageParseError,
    daily_csv,
    parse_daily_csv,
)
from mlops_pipeline.market.calendar import CALENDAR_END, CALENDAR_START, is_trading_day
from mlops_pipeline.market.tickers import TICKER_PATTERN

RECORDING_SUFFIX = ".csv"
_POSITIVE_COLUMNS = ("open", "high", "low", "close", "adjusted_close", "split_coefficient")
_NON_NEGATIVE_COLUMNS = ("volume", "dividend_amount")


class RecordingError(ValueError):
    """A recording cannot be served; the message names the file, the line and the problem."""


def _data_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every non-blank line after the header, as ``parse_daily_csv`` counts them."""
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return lines[1:]


def read_recording(path: Path) -> pd.DataFrame:
    """The raw sessions of one recorded file, oldest first, in the canonical price frame.

    Refuses (``RecordingError``) a file that is not the AlphaVantage CSV, has no rows, has dates
    that are not strictly newest first or not NYSE sessions, or has a price, volume, dividend or
    split that is negative (or a price or split that is zero).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RecordingError(f"{path}: cannot be read ({error})") from None
    lines = _data_lines(text)
    try:
        frame = parse_daily_csv(text, DAILY_ADJUSTED, str(path))
    except AlphaVantageParseError as error:
        if not lines and text.strip():
            raise RecordingError(f"{path}: line 1: a header and no rows after it") from None
        raise RecordingError(str(error)) from None
    previous: pd.Timestamp | None = None
    line_of: dict[pd.Timestamp, int] = {}
    for number, line in lines:
        day = pd.Timestamp(line.split(",", 1)[0])
        line_of[day] = number
        if previous is not None and day >= previous:
            raise RecordingError(
                f"{path}: line {number}: {day.date()} comes after {previous.date()}; "
                "rows must be newest first, one per date"
            )
        if not (pd.Timestamp(CALENDAR_START) <= day <= pd.Timestamp(CALENDAR_END)) or not is_trading_day(day):
            raise RecordingError(f"{path}: line {number}: {day.date()} is not an NYSE session")
        previous = day
    for column in (*_POSITIVE_COLUMNS, *_NON_NEGATIVE_COLUMNS):
        values = frame[column]
        bad = values < 0 if column in _NON_NEGATIVE_COLUMNS else values <= 0
        if bad.any():
            first = frame.loc[bad].iloc[-1]  # the newest bad row comes first in the file
            comparison = "negative" if column in _NON_NEGATIVE_COLUMNS else "not positive"
            raise RecordingError(
                f"{path}: line {line_of[first['date']]}: {column} {first[column]:g} on "
                f"{first['date'].date()} is {comparison}"
            )
    return frame.drop(columns="adjusted_close")


def discover_recordings(directory: Path) -> dict[str, Path]:
    """Symbol -> ``<SYMBOL>.csv`` file in ``directory``; ``RecordingError`` for a missing folder,
    a folder without recordings, or a file name that is no ticker."""
    if not directory.is_dir():
        raise RecordingError(f"{directory}: not a directory of <SYMBOL>.csv recordings")
    files = {
        path.stem.upper(): path
        for path in sorted(directory.iterdir())
        if path.is_file() and path.suffix.lower() == RECORDING_SUFFIX
    }
    if not files:
        raise RecordingError(f"{directory}: no <SYMBOL>.csv recordings")
    for symbol, path in files.items():
        if not re.match(TICKER_PATTERN, symbol):
            raise RecordingError(f"{path}: {path.stem!r} is not a ticker symbol")
    return files


def load_recordings(directory: Path) -> dict[str, pd.DataFrame]:
    """Every recording in ``directory``, checked; raw frames (no adjusted close) by symbol."""
    return {symbol: read_recording(path) for symbol, path in discover_recordings(directory).items()}


def write_recording(frame: pd.DataFrame, path: Path) -> int:
    """Write a canonical price frame (oldest first) as the recording ``path``; the rows written.

    The file is written next to its final name and renamed into place once it reads back as a valid
    recording, so ``path`` is never left half-written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=RECORDING_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(daily_csv(frame, adjusted=True))
        read_recording(Path(scratch))
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return len(frame)
