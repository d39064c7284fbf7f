"""Validate a replay's trading-day range and team list before anything runs (nothing is written)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from mlops_pipeline.market.calendar import holiday_name, is_trading_day, trading_days


class ReplayRangeError(ValueError):
    """The requested replay cannot run; the message says why and what is allowed."""


def replay_trading_days(
    start: date,
    end: date,
    history_start: date | None = None,
    history_end: date | None = None,
    warmup_days: int = 0,
) -> list[date]:
    """Every NYSE session from ``start`` to ``end`` (inclusive), or :class:`ReplayRangeError`.

    ``history_start``/``history_end`` bound the market history (e.g. the sandbox's first session and
    its "today"); at least ``warmup_days`` sessions of history must precede ``start`` (the look-back
    that features and training need).
    """
    if start > end:
        raise ReplayRangeError(f"--from {start} is after --to {end}")
    if history_end is not None and end > history_end:
        raise ReplayRangeError(
            f"--to {end} is after the last day of the market history ({history_end}); "
            "a replay only moves through the past"
        )
    try:
        days = [stamp.date() for stamp in trading_days(start, end)]
        if history_start is not None:
            before = len(trading_days(history_start, start)) - int(is_trading_day(start))
            if start < history_start or before < warmup_days:
                horizon = history_start + timedelta(days=2 * warmup_days + 14)
                earliest = trading_days(history_start, horizon)[warmup_days].date()
                raise ReplayRangeError(
                    f"--from {start} has {max(before, 0)} session(s) of market history before it "
                    f"(history starts {history_start}, {warmup_days} needed); start on {earliest} or later"
                )
    except ReplayRangeError:
        raise
    except ValueError as exc:  # outside the trading calendar
        raise ReplayRangeError(f"replay range {start}..{end}: {exc}") from exc
    if not days:
        closed = ", ".join(
            f"{stamp.date()} ({holiday_name(stamp) or 'weekend'})" for stamp in pd.date_range(start, end)
        )
        raise ReplayRangeError(f"no NYSE trading days from {start} to {end}: {closed}")
    return days


def replay_teams(requested: str | None, known: list[str]) -> list[str]:
    """Parse ``--teams red,blue`` (``None``: every team); unknown names are an error listing the known."""
    if requested is None:
        return list(known)
    names = [name.strip() for name in requested.split(",") if name.strip()]
    if not names:
        raise ReplayRangeError("--teams is empty; give team names separated by commas")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ReplayRangeError(f"unknown team(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))
