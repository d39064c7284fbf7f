from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import exchange_calendars
import pandas as pd
import pytest

from mlops_pipeline.market import calendar
from mlops_pipeline.market.calendar import (
    CALENDAR_END,
    CALENDAR_START,
    EXCHANGE_TIMEZONE,
    SPECIAL_CLOSURE,
    build_table,
    exchange_calendars_version,
    holiday_name,
    is_trading_day,
    last_completed_trading_day,
    next_trading_day,
    previous_trading_day,
    session_close,
    table_path,
    trading_days,
)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=EXCHANGE_TIMEZONE)


def test_trading_days_skip_weekends_and_holidays() -> None:
    days = trading_days(date(2024, 7, 1), date(2024, 7, 8))

    assert list(days.date) == [date(2024, 7, d) for d in (1, 2, 3, 5, 8)]
    assert days.tz is None


def test_trading_days_skip_good_friday() -> None:
    days = trading_days("2024-03-25", "2024-04-05")

    assert pd.Timestamp("2024-03-29") not in days
    assert len(days) == 9
    assert (days.dayofweek < 5).all()


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (date(2024, 7, 4), False),
        (date(2024, 3, 29), False),
        (date(2024, 7, 6), False),
        (date(2024, 7, 5), True),
    ],
)
def test_is_trading_day(day: date, trading: bool) -> None:
    assert is_trading_day(day) is trading


def test_previous_and_next_trading_day_jump_over_holidays_and_weekends() -> None:
    assert previous_trading_day(date(2024, 7, 5)) == date(2024, 7, 3)
    assert next_trading_day(date(2024, 7, 3)) == date(2024, 7, 5)
    assert previous_trading_day(date(2024, 7, 8)) == date(2024, 7, 5)
    assert next_trading_day(date(2024, 3, 28)) == date(2024, 4, 1)


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2024, 3, 29), "Good Friday"),
        (date(2024, 12, 25), "Christmas"),
        (date(2025, 1, 9), SPECIAL_CLOSURE),
        (date(2001, 9, 11), SPECIAL_CLOSURE),
        (date(2022, 6, 20), "Juneteenth National Independence Day"),
        (date(1990, 1, 1), "New Year's Day"),  # the calendar's first day, before its first session
        (date(2024, 7, 6), None),
        (date(2024, 7, 5), None),
    ],
)
def test_holiday_name(day: date, name: str | None) -> None:
    assert holiday_name(day) == name


def test_session_close_respects_early_closes() -> None:
    assert session_close(date(2024, 11, 29)) == ny(2024, 11, 29, 13, 0)
    assert session_close(date(2024, 11, 27)) == ny(2024, 11, 27, 16, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (ny(2024, 6, 14, 15, 59), date(2024, 6, 13)),
        (ny(2024, 6, 14, 16, 0), date(2024, 6, 14)),
        (ny(2024, 6, 14, 9, 0), date(2024, 6, 13)),
        (ny(2024, 6, 15, 10, 0), date(2024, 6, 14)),
        (ny(2024, 6, 17, 9, 0), date(2024, 6, 14)),
        (ny(2024, 7, 4, 18, 0), date(2024, 7, 3)),
        (ny(2024, 11, 29, 13, 30), date(2024, 11, 29)),
        (ny(2024, 11, 29, 12, 59), date(2024, 11, 27)),
        (datetime(2024, 1, 12, 21, 5, tzinfo=UTC), date(2024, 1, 12)),
        (datetime(2024, 1, 12, 20, 55, tzinfo=UTC), date(2024, 1, 11)),
        (datetime(2024, 6, 14, 20, 5, tzinfo=UTC), date(2024, 6, 14)),
    ],
)
def test_last_completed_trading_day(now: datetime, expected: date) -> None:
    assert last_completed_trading_day(now) == expected


def test_last_completed_trading_day_defaults_to_now() -> None:
    assert last_completed_trading_day() == last_completed_trading_day(datetime.now(UTC))


def test_last_completed_trading_day_needs_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        last_completed_trading_day(datetime(2024, 6, 14, 17, 0))


def test_dates_outside_the_calendar_are_rejected() -> None:
    with pytest.raises(ValueError, match="outside the trading calendar"):
        is_trading_day(date(2050, 1, 3))


def test_the_packaged_table_is_the_installed_exchange_calendars_xnys() -> None:
    """The table the package ships for the pinned exchange-calendars is that version's XNYS; after an
    upgrade, ``python -m mlops_pipeline.market.calendar`` writes the new version's table."""
    packaged = table_path(exchange_calendars_version())
    assert packaged.is_file(), f"no table for exchange-calendars {exchange_calendars_version()}: write it"
    assert json.loads(packaged.read_text(encoding="utf-8")) == build_table()


def test_sessions_early_closes_and_holiday_names_agree_with_exchange_calendars() -> None:
    xnys = exchange_calendars.get_calendar("XNYS", start=CALENDAR_START, end=CALENDAR_END)
    sessions = trading_days(CALENDAR_START, CALENDAR_END)
    assert sessions.equals(pd.DatetimeIndex(xnys.sessions, freq=None))
    closes = xnys.schedule["close"].dt.tz_convert(EXCHANGE_TIMEZONE)
    early = closes[closes.dt.hour < 16]
    assert len(early) > 90 and {close.strftime("%H:%M") for close in early} == {"13:00", "14:00"}
    assert [session_close(day) for day in early.index] == [close.to_pydatetime() for close in early]
    names = xnys.regular_holidays.holidays(
        pd.Timestamp(CALENDAR_START), pd.Timestamp(CALENDAR_END), return_name=True
    )
    closed = pd.bdate_range(CALENDAR_START, CALENDAR_END).difference(sessions)
    assert {day.date(): holiday_name(day) for day in closed} == {
        day.date(): str(names.get(day, SPECIAL_CLOSURE)) for day in closed
    }


def test_another_exchange_calendars_version_builds_its_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calendar, "exchange_calendars_version", lambda: "0.0.0-unpackaged")
    calendar._calendar.cache_clear()
    try:
        assert holiday_name(date(2024, 3, 29)) == "Good Friday"
        assert session_close(date(2024, 11, 29)) == ny(2024, 11, 29, 13, 0)
    finally:
        calendar._calendar.cache_clear()


def test_a_table_of_another_range_is_refused(tmp_path: Path) -> None:
    packaged = json.loads(table_path(exchange_calendars_version()).read_text(encoding="utf-8"))
    table = {**packaged, "start": "2000-01-01"}
    with pytest.raises(ValueError, match=r"stale\.json: covers \('2000-01-01', '2035-12-31'\)"):
        calendar._read_table(table, str(tmp_path / "stale.json"))
