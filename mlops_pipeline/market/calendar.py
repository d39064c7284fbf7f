"""The NYSE (XNYS) trading calendar: sessions, holidays and early closes.

Dates are exchange-local (America/New_York). Functions accept a ``date``, a ``datetime``/``Timestamp``
(a tz-aware value is first converted to New York time) or an ISO string, and return plain ``date``
objects, except :func:`trading_days` which returns a naive ``DatetimeIndex``.

The calendar is exchange-calendars' XNYS, reduced to a table: the weekdays without a session (with
the holiday's name) and the sessions that close early. Building the exchange-calendars calendar
costs 0.6 s of CPU in every process that needs it (``mlops run``, the code server, the sandbox, a
run in its own interpreter), so the package ships the table of the pinned exchange-calendars
version (``tables/``), read in milliseconds; with any other installed version the table is built
from exchange-calendars on first use. ``python -m mlops_pipeline.market.calendar`` writes the table
of the installed version. It covers :data:`CALENDAR_START` to :data:`CALENDAR_END`; dates outside
that range raise ``ValueError``.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

EXCHANGE_TIMEZONE = ZoneInfo("America/New_York")
CALENDAR_START = date(1990, 1, 1)
CALENDAR_END = date(2035, 12, 31)
SPECIAL_CLOSURE = "Special closure"
REGULAR_CLOSE = time(16, 0)
PACKAGED_TABLES = Path(__file__).resolve().parent / "tables"

DateLike = date | datetime | pd.Timestamp | str


@dataclass(frozen=True)
class _Calendar:
    sessions: pd.DatetimeIndex  # naive, normalized
    closed: dict[date, str]  # weekdays without a session: the holiday's name or SPECIAL_CLOSURE
    early_closes: dict[date, time]  # sessions closing at another time (all earlier), New York time


def exchange_calendars_version() -> str:
    return importlib.metadata.version("exchange-calendars")


def table_path(version: str) -> Path:
    return PACKAGED_TABLES / f"xnys-{version}.json"


def build_table() -> dict[str, Any]:
    """The XNYS calendar of the installed exchange-calendars over the calendar's range, as a table."""
    import exchange_calendars

    calendar = exchange_calendars.get_calendar("XNYS", start=CALENDAR_START, end=CALENDAR_END)
    sessions = calendar.sessions
    if (sessions.dayofweek >= 5).any():
        raise ValueError("exchange-calendars' XNYS has weekend sessions: the table cannot express them")
    start, end = pd.Timestamp(CALENDAR_START), pd.Timestamp(CALENDAR_END)
    names = calendar.regular_holidays.holidays(start, end, return_name=True)
    closes = calendar.schedule["close"].dt.tz_convert(EXCHANGE_TIMEZONE)
    return {
        "source": "exchange-calendars XNYS",
        "start": CALENDAR_START.isoformat(),
        "end": CALENDAR_END.isoformat(),
        "closed": {
            day.date().isoformat(): str(names.get(day, SPECIAL_CLOSURE))
            for day in pd.bdate_range(start, end).difference(sessions)
        },
        "early_closes": {
            day.date().isoformat(): close.strftime("%H:%M")
            for day, close in closes.items()
            if close.time() != REGULAR_CLOSE
        },
    }


def _read_table(table: dict[str, Any], source: str) -> _Calendar:
    covered = (table.get("start"), table.get("end"))
    if covered != (CALENDAR_START.isoformat(), CALENDAR_END.isoformat()):
        raise ValueError(f"{source}: covers {covered}, not {CALENDAR_START}..{CALENDAR_END}")
    closed = {date.fromisoformat(day): name for day, name in table["closed"].items()}
    early_closes = {
        date.fromisoformat(day): time.fromisoformat(at) for day, at in table["early_closes"].items()
    }
    days = pd.date_range(CALENDAR_START, CALENDAR_END, freq="D")  # vectorized: bdate_range is 20x slower
    weekdays = days[days.dayofweek < 5]
    return _Calendar(
        sessions=pd.DatetimeIndex(weekdays.difference(pd.DatetimeIndex(list(closed))), freq=None),
        closed=closed,
        early_closes=early_closes,
    )


@cache
def _calendar() -> _Calendar:
    version = exchange_calendars_version()
    packaged = table_path(version)
    if packaged.is_file():
        return _read_table(json.loads(packaged.read_text(encoding="utf-8")), str(packaged))
    return _read_table(build_table(), f"exchange-calendars {version}")


def _day(value: DateLike) -> pd.Timestamp:
    """The naive, normalized exchange-local day of ``value``, checked against the calendar range."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(EXCHANGE_TIMEZONE).tz_localize(None)
    stamp = stamp.normalize()
    if not pd.Timestamp(CALENDAR_START) <= stamp <= pd.Timestamp(CALENDAR_END):
        raise ValueError(f"{stamp.date()} is outside the trading calendar ({CALENDAR_START}..{CALENDAR_END})")
    return stamp


def _sessions() -> pd.DatetimeIndex:
    return _calendar().sessions


def trading_days(start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    """NYSE sessions from ``start`` to ``end``, both inclusive, as naive normalized dates."""
    sessions = _sessions()
    first = sessions.searchsorted(_day(start), side="left")
    last = sessions.searchsorted(_day(end), side="right")
    return pd.DatetimeIndex(sessions[first:last], freq=None)


def is_trading_day(day: DateLike) -> bool:
    """Whether the NYSE holds a session on ``day``."""
    return _day(day) in _calendar().sessions


def previous_trading_day(day: DateLike) -> date:
    """The last session strictly before ``day``."""
    sessions = _sessions()
    position = sessions.searchsorted(_day(day), side="left") - 1
    if position < 0:
        raise ValueError(f"no trading day before {_day(day).date()} in the calendar")
    return sessions[position].date()


def next_trading_day(day: DateLike) -> date:
    """The first session strictly after ``day``."""
    sessions = _sessions()
    position = sessions.searchsorted(_day(day), side="right")
    if position >= len(sessions):
        raise ValueError(f"no trading day after {_day(day).date()} in the calendar")
    return sessions[position].date()


def trading_day_after(day: DateLike, sessions_ahead: int) -> date | None:
    """The session ``sessions_ahead`` sessions after ``day`` (``None`` beyond the known calendar)."""
    sessions = _sessions()
    position = sessions.searchsorted(_day(day), side="right") + sessions_ahead - 1
    return sessions[position].date() if 0 <= position < len(sessions) else None


def session_close(day: DateLike) -> datetime:
    """The closing time of the session on ``day`` in New York time (13:00 on early-close days)."""
    session = _day(day)
    if not is_trading_day(session):
        raise ValueError(f"{session.date()} is not a trading day")
    closes_at = _calendar().early_closes.get(session.date(), REGULAR_CLOSE)
    return datetime.combine(session.date(), closes_at, tzinfo=EXCHANGE_TIMEZONE)


def last_completed_trading_day(now: datetime | None = None) -> date:
    """The most recent session whose close is at or before ``now`` (a tz-aware datetime; default:
    the current time).

    During a session (or before its open) this is the previous session; early closes are respected.
    """
    if now is None:
        now = datetime.now(EXCHANGE_TIMEZONE)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local_now = now.astimezone(EXCHANGE_TIMEZONE)
    today = local_now.date()
    if is_trading_day(today) and local_now >= session_close(today):
        return today
    return previous_trading_day(today)


def holiday_name(day: DateLike) -> str | None:
    """The name of the weekday NYSE holiday on ``day`` (e.g. "Good Friday"), or ``None``.

    Weekends and sessions give ``None``; unscheduled closures (e.g. national days of mourning)
    are reported as :data:`SPECIAL_CLOSURE`.
    """
    return _calendar().closed.get(_day(day).date())  # exactly the weekdays without a session


def non_session_weekdays(start: DateLike, end: DateLike) -> list[date]:
    """Weekdays from ``start`` to ``end`` (both inclusive) without an NYSE session, in order.

    These are the weekday holidays and unscheduled closures (see :func:`holiday_name`); together
    with the weekends they are exactly the days :func:`trading_days` leaves out.
    """
    weekdays = pd.bdate_range(_day(start), _day(end))
    return [stamp.date() for stamp in weekdays.difference(trading_days(start, end))]


if __name__ == "__main__":
    written = table_path(exchange_calendars_version())
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(json.dumps(build_table(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(written)
