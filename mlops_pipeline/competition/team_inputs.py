"""Where the competition's inputs and outputs live in the object store, and reading them tolerantly."""

from __future__ import annotations

from datetime import date

import pandas as pd

from mlops_pipeline.competition.leaderboard import TeamStanding
from mlops_pipeline.objects import (
    ObjectNotFoundError,
    Objects,
    ObjectStoreError,
    session_dates,
)
from mlops_pipeline.team_store import (
    BACKTEST_DAILY_KEY,
    EQUITY_KEY,
    MONITORING_SUMMARY_KEY,
    session_backtest_key,
)

LEADERBOARD_TABLE_KEY = "competition/leaderboard.parquet"
LEADERBOARD_HTML_KEY = "competition/leaderboard.html"
LEADERBOARDS_PREFIX = "competition/leaderboards"


def session_leaderboard_key(session: date, suffix: str = "parquet") -> str:
    """The leaderboard as ranked on ``session`` (``suffix`` parquet or html)."""
    return f"{LEADERBOARDS_PREFIX}/{session.isoformat()}.{suffix}"


def leaderboard_sessions(store: Objects) -> list[date]:
    """The sessions with a stored leaderboard, oldest first."""
    return session_dates(store, LEADERBOARDS_PREFIX)


def _read(store: Objects, key: str, notes: list[str]) -> tuple[pd.DataFrame | None, dict]:
    try:
        frame, manifest = store.get_parquet_with_manifest(key)
    except ObjectNotFoundError:
        return None, {}
    except (ObjectStoreError, OSError, ValueError) as exc:
        notes.append(f"unreadable {key}: {str(exc).splitlines()[0][:120]}")
        return None, {}
    return frame, manifest


def _until(frame: pd.DataFrame | None, session: date | None) -> pd.DataFrame | None:
    """The rows dated on or before ``session`` (all of them without a session)."""
    if frame is None or session is None or frame.empty:
        return frame
    return frame[pd.to_datetime(frame["date"]) <= pd.Timestamp(session)].reset_index(drop=True)


def read_standing(team_store: Objects, team: str, session: date | None = None) -> TeamStanding:
    """A team's journal equity, backtest summary and monitoring summary; absent ones stay ``None``.
    With ``session``, the standing as it was after that session: the session's backtest, and the
    equity and monitoring rows up to that session."""
    notes: list[str] = []
    backtest_key = BACKTEST_DAILY_KEY if session is None else session_backtest_key(session)
    equity = _until(_read(team_store, EQUITY_KEY, notes)[0], session)
    daily, manifest = _read(team_store, backtest_key, notes)
    monitoring = _until(_read(team_store, MONITORING_SUMMARY_KEY, notes)[0], session)
    backtest_equity = None
    if daily is not None and not daily.empty:
        backtest_equity = daily.set_index("date")["equity"]
    return TeamStanding(
        team=team,
        paper_equity=equity,
        backtest=manifest.get("summary") if daily is not None else None,
        champions=manifest.get("champions", {}) if daily is not None else {},
        backtest_equity=backtest_equity,
        monitoring=monitoring,
        notes=notes,
    )
