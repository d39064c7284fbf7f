"""A team's backtest of one session: its champions' OOS predictions through the team's strategy.

:func:`backtest_session` holds every decision of the ``<team>/backtest`` asset: no champion yet
(with the tickers and why), or a stored backtest (daily table, chart) with what it was run on; the
asset turns the outcome into metadata and the leakage check. The champions are those of the
session (the versions its promotion gates left as champion), so backtesting an earlier session
again gives what it gave then; the newest session's backtest is also the team's current one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.competition.backtest import BacktestResult, run_backtest
from mlops_pipeline.competition.champion_oos import ChampionNotFoundError, load_champion_oos
from mlops_pipeline.competition.charts import equity_drawdown_png
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.objects import Objects, session_dates
from mlops_pipeline.outcomes import Skipped
from mlops_pipeline.team_store import (
    BACKTEST_CHART_KEY,
    BACKTEST_DAILY_KEY,
    SESSION_BACKTESTS_PREFIX,
    session_backtest_key,
)


@dataclass(frozen=True)
class NoChampionYet(Skipped):
    """No ticker of the team has a champion: nothing to backtest."""

    missing: dict[str, str]  # ticker -> why it has no champion


@dataclass(frozen=True)
class Backtested:
    result: BacktestResult
    summary: dict[str, Any]  # the result's statistics, NaN and inf as None
    champions: dict[str, dict[str, Any]]  # ticker -> the champion backtested
    missing: dict[str, str]  # ticker -> why it is left out
    chart: bytes  # equity and drawdown, PNG
    version: str  # of the champions and the team's configuration


SessionBacktest = NoChampionYet | Backtested


def team_metadata(team: TeamConfig) -> dict[str, str]:
    """The team and where its configuration came from, on the backtest and its stored table."""
    origin = team.source.tags() if team.source is not None else {}
    return {"team": team.name, "config_hash": team.config_hash, **origin}


def _finite(value: object) -> object:
    """NaN/inf become None so that metadata and manifests stay valid JSON."""
    if isinstance(value, float):  # numpy floats too: metadata wants plain Python floats
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def backtest_session(
    team: TeamConfig,
    session: date,
    session_champions: Mapping[str, str | None],
    tracking_uri: str,
    store: Objects,
) -> SessionBacktest:
    """Backtest the session's champion of every ticker that has one and store the daily table and
    chart in the team's ``store``, under the session (and as the current backtest when no later
    session has one). ``session_champions`` maps a ticker to the version its gate left as champion
    on ``session`` (``None``: it had none); a ticker without a record uses the current champion.
    Raises ``BacktestError`` when the predictions cannot be backtested."""
    frames, champions, missing = [], {}, {}
    for ticker in team.tickers:
        if ticker in session_champions and session_champions[ticker] is None:
            missing[ticker] = f"no champion after the promotion gate of {session.isoformat()}"
            continue
        try:
            champion = load_champion_oos(tracking_uri, team.name, ticker, session_champions.get(ticker))
        except ChampionNotFoundError as exc:
            missing[ticker] = str(exc)
            continue
        frames.append(champion.frame)
        champions[ticker] = {
            "model": champion.model_name,
            "version": champion.version,
            "run_id": champion.run_id,
            "below_naive": champion.below_naive,
        }
    if not frames:
        return NoChampionYet(
            f"team {team.name}: no champion yet for any ticker: nothing to backtest", missing
        )
    result = run_backtest(pd.concat(frames, ignore_index=True), team.strategy, team.risk, team.costs)
    summary = {name: _finite(value) for name, value in result.summary().items()}
    manifest = {
        **team_metadata(team),
        "session": session.isoformat(),
        "summary": summary,
        "champions": champions,
        "missing": missing,
    }
    chart = equity_drawdown_png(result.daily, f"{team.name}: backtest vs buy and hold")
    store.put_parquet(session_backtest_key(session), result.daily, manifest)
    store.put_bytes(session_backtest_key(session, "png"), chart)
    if session >= max(session_dates(store, SESSION_BACKTESTS_PREFIX)):
        store.put_parquet(BACKTEST_DAILY_KEY, result.daily, manifest)
        store.put_bytes(BACKTEST_CHART_KEY, chart)
    version = hashlib.sha256(
        json.dumps({"champions": champions, "config": team.config_hash}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return Backtested(result, summary, champions, missing, chart, version)
