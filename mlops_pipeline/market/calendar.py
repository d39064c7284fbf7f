"""The NYSE (XNYS) trading calendar: sessions, holidays and early closes.

Dates are exchange-local (America/New_York). Functions accept a ``date``, a ``datetime``/``Timestamp``
(a tz-aware value is first converted to New York time) or an ISO string, and return plain ``date``
objects, except :func:`trading_days` which returns a naive ``DatetimeIndex``.

The underlying ``exchange_calendars`` calendar is slow to build, so it is built on first use and
cached for the process; importing this module is cheap. It covers :data:`CALENDAR_START` to
:data:`CALENDAR_END`; dates outside that range raise ``ValueError``.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

EXCHANGE_TIMEZONE = ZoneInfo("America/New_York")
CALENDAR_START = date(1990, 1, 1)
CALENDAR_END = date(2035, 12, 31)
SPECIAL_CLOSURE = "Special closure"

DateLike = date | datetime | pd.Timestamp | str


@cache
def _xnys() -> ExchangeCalendar:
    import exchange_calendars

    return exchange_calendars.get_calendar("XNYS", start=CALENDAR_START, end=CALENDAR_END)


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
    return _xnys().sessions


def trading_days(start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    """NYSE sessions from ``start`` to ``end``, both inclusive, as naive normalized dates."""
    sessions = _sessions()
    first = sessions.searchsorted(_day(start), side="left")
    last = sessions.searchsorted(_day(end), side="right")
    return pd.DatetimeIndex(sessions[first:last], freq=None)


def is_trading_day(day: DateLike) -> bool:
    """Whether the NYSE holds a session on ``day``."""
    return bool(_xnys().is_session(_day(day)))


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
    return _xnys().session_close(session).tz_convert(EXCHANGE_TIMEZONE).to_pydatetime()


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
    stamp = _day(day)
    if stamp.dayofweek >= 5 or is_trading_day(stamp):
        return None
    names = _xnys().regular_holidays.holidays(stamp, stamp, return_name=True)
    if len(names):
        return str(names.iloc[0])
    return SPECIAL_CLOSURE


def non_session_weekdays(start: DateLike, end: DateLike) -> list[date]:
    """Weekdays from ``start`` to ``end`` (both inclusive) without an NYSE session, in order.

    These are the weekday holidays and unscheduled closures (see :func:`holiday_name`); together
    with the weekends they are exactly the days :func:`trading_days` leaves out.
    """
    weekdays = pd.bdate_range(_day(start), _day(end))
    return [stamp.date() for stamp in weekdays.difference(trading_days(start, end))]
