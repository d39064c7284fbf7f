"""NYSE trading sessions as a Dagster partition dimension.

:func:`nyse_sessions` is the one definition of the session partitions: one partition per NYSE
session, keyed ``YYYY-MM-DD`` (exchange-local, America/New_York). It is a weekday
``TimeWindowPartitionsDefinition`` (cron ``0 0 * * 1-5``) whose ``exclusions`` are the weekday
holidays and unscheduled closures from :mod:`mlops_pipeline.market.calendar`, so weekends and
holidays are never partitions, and ``TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)``
maps a session to the previous session (2024-04-01 to 2024-03-28, across Good Friday).

Dagster facts this relies on (dagster 1.13, ``_core/definitions/partitions/definition/time_window.py``):

* ``end`` is exclusive and compared with each window's end; a weekday cron window runs to the
  next weekday tick, so Friday's window ends on Monday. The definition therefore ends at the
  tick after ``end``'s window.
* ``end_offset=0`` also drops every window that ends after the current time, which would drop
  the session completed this evening (its window ends at midnight); ``end_offset=1`` admits it,
  and ``end`` still caps the set.
* naive ``datetime`` exclusions are read in the definition's timezone (``replace(tzinfo=...)``);
  ``date`` objects are not accepted.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, time, timedelta

import dagster as dg

from mlops_pipeline.market.calendar import non_session_weekdays

SESSION_TIMEZONE = "America/New_York"
SESSION_CRON = "0 0 * * 1-5"
SESSION_KEY_FORMAT = "%Y-%m-%d"


def _midnight(day: date) -> datetime:
    """Naive midnight of ``day``; Dagster reads it in :data:`SESSION_TIMEZONE`."""
    return datetime.combine(day, time())


def _next_weekday(day: date) -> date:
    following = day + timedelta(days=1)
    while following.weekday() >= 5:
        following += timedelta(days=1)
    return following


def nyse_sessions(start: date, end: date) -> dg.TimeWindowPartitionsDefinition:
    """One partition per NYSE session from ``start`` to ``end``, both inclusive.

    ``end`` should be the last completed session (``market.calendar.last_completed_trading_day()``):
    its partition is included even before the calendar day is over, and nothing after it is.
    """
    if end < start:
        raise ValueError(f"sessions end {end} is before their start {start}")
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=SESSION_CRON,
        start=_midnight(start),
        end=_midnight(_next_weekday(end)),
        end_offset=1,
        timezone=SESSION_TIMEZONE,
        fmt=SESSION_KEY_FORMAT,
        exclusions=[_midnight(day) for day in non_session_weekdays(start, end)],
    )


SESSION = "session"
TICKER = "ticker"
# A session's previous session (across weekends and holidays): path-dependent assets depend on it.
PREVIOUS_SESSION = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
# A team's session x ticker asset on another session x ticker asset with other tickers (the market
# data has every team's): the same session and ticker. Dagster's default identity mapping between two
# different definitions lists every key of both (thousands) at each evaluation of the automation
# sensor; mapped dimension by dimension, only the keys asked for are.
# (Dagster marks the class beta; what the platform relies on is tested in tests/automation.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    SAME_SESSION_AND_TICKER = dg.MultiPartitionMapping(
        {
            SESSION: dg.DimensionPartitionMapping(SESSION, dg.IdentityPartitionMapping()),
            TICKER: dg.DimensionPartitionMapping(TICKER, dg.IdentityPartitionMapping()),
        }
    )


def session_ticker_partitions(
    sessions: dg.TimeWindowPartitionsDefinition, tickers: list[str]
) -> dg.MultiPartitionsDefinition:
    """Session x ticker: one partition per session and ticker (keys like ``2024-06-13|MSFT``)."""
    return dg.MultiPartitionsDefinition({SESSION: sessions, TICKER: dg.StaticPartitionsDefinition(tickers)})


def session_ticker_key(session: date, ticker: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({SESSION: session.strftime(SESSION_KEY_FORMAT), TICKER: ticker})


def split_session_ticker(key: str) -> tuple[date, str]:
    """``2024-06-13|MSFT`` as (session, ticker)."""
    session, separator, ticker = str(key).partition("|")
    if not separator:
        raise ValueError(f"partition {key!r} is not a session|ticker key")
    return datetime.strptime(session, SESSION_KEY_FORMAT).date(), ticker


def _dimensions(context: dg.AssetExecutionContext) -> dict[str, str]:
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return dict(key.keys_by_dimension)
    if "|" in key:  # session|ticker (dimensions in name order)
        session, ticker = key.split("|", 1)
        return {SESSION: session, TICKER: ticker}
    return {SESSION: key}


def session_of(context: dg.AssetExecutionContext) -> date:
    """The session a run materializes, from its partition key only (session or session x ticker)."""
    return datetime.strptime(_dimensions(context)[SESSION], SESSION_KEY_FORMAT).date()


def ticker_of(context: dg.AssetExecutionContext) -> str:
    """The ticker of a session x ticker partition."""
    ticker = _dimensions(context).get(TICKER)
    if ticker is None:
        raise dg.Failure(f"partition {context.partition_key!r} has no ticker: expected a session|ticker key")
    return ticker
