"""Competition assets, per session: each team's backtest of its champions, and the leaderboard over
every team (always every team of the platform, whichever team's run materializes it)."""

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from mlops_pipeline.assets.automation import per_team_stage
from mlops_pipeline.assets.common import json_metadata, object_link
from mlops_pipeline.assets.sessions import session_of, session_ticker_key
from mlops_pipeline.assets.training import CHAMPION_AFTER_GATE, NO_CHAMPION
from mlops_pipeline.competition.backtest import BacktestError, BacktestResult
from mlops_pipeline.competition.charts import data_uri
from mlops_pipeline.competition.leaderboard import (
    chosen_rank_metric,
    leaderboard_frame,
    render_html,
    render_markdown,
)
from mlops_pipeline.competition.session_backtest import (
    Backtested,
    NoChampionYet,
    backtest_session,
    team_metadata,
)
from mlops_pipeline.competition.team_inputs import (
    LEADERBOARD_HTML_KEY,
    LEADERBOARD_TABLE_KEY,
    leaderboard_sessions,
    read_standing,
    session_leaderboard_key,
)
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import session_backtest_key, team_store

LEADERBOARD = dg.AssetKey(["leaderboard"])
LEAKAGE_CHECK = "no_probable_leakage"


def backtest_key(team: str) -> dg.AssetKey:
    return dg.AssetKey([team, "backtest"])


def session_champions(instance: dg.DagsterInstance, team: TeamConfig, session: date) -> dict[str, str | None]:
    """Ticker -> the version the session's promotion gate left as champion (``None``: none), from
    the newest materialization of ``<team>/champion`` for the session; tickers without one are left
    out (their current champion is backtested)."""
    key = dg.AssetKey([team.name, "champion"])
    found: dict[str, str | None] = {}
    for ticker in team.tickers:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[str(session_ticker_key(session, ticker))]),
            limit=1,
        ).records
        materialization = records[0].asset_materialization if records else None
        recorded = materialization.metadata.get(CHAMPION_AFTER_GATE) if materialization else None
        if recorded is not None:
            found[ticker] = None if recorded.value == NO_CHAMPION else str(recorded.value)
    return found


def _backtest_metadata(step: Backtested, store: ObjectStore, session: date) -> dict[str, object]:
    """The backtest's statistics, period, champions and chart."""
    summary = step.summary
    stats = {name: value for name, value in summary.items() if isinstance(value, int | float)}
    return {
        **{name: value for name, value in stats.items() if value is not None},
        "benchmark": json_metadata(summary["benchmark"]),
        "leakage_reasons": json_metadata(summary["leakage_reasons"]),
        "period": f"{summary['first_date']}..{summary['last_date']}",
        "champions": json_metadata(step.champions),
        "missing_tickers": json_metadata(step.missing),
        "equity_drawdown": dg.MetadataValue.md(f"![equity and drawdown]({data_uri(step.chart)})"),
        "chart": object_link(store, session_backtest_key(session, "png")),
    }


def _leakage_check(team: str, result: BacktestResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=backtest_key(team),
        check_name=LEAKAGE_CHECK,
        passed=not result.leakage_suspected,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(result.leakage_reasons) or "OOS Sharpe <= 3 and IC <= 0.15",
        metadata={
            name: value
            for name, value in (
                ("sharpe", result.stats.sharpe),
                ("information_coefficient", result.information_coefficient),
            )
            if math.isfinite(value)
        },
    )


def build_competition_assets(
    team: TeamConfig, settings: PlatformSettings, sessions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """``[team, "backtest"]``: the champions' walk-forward OOS predictions through the team's strategy."""
    key = backtest_key(team.name)
    champion_key = dg.AssetKey([team.name, "champion"])
    tracking_uri = str(settings.mlflow_tracking_uri)
    metadata = team_metadata(team)

    @dg.asset(
        key=key,
        deps=[champion_key, dg.AssetKey([team.name, "reconciliation"])],
        partitions_def=sessions,
        # after the session's reconciliation, not at each ticker's champion update before it
        automation_condition=per_team_stage(champion_key),
        group_name=team.name,
        kinds={"parquet"},
        tags={"team": team.name},
        metadata=metadata,
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                LEAKAGE_CHECK, asset=key, description="OOS Sharpe > 3 or IC > 0.15 suggests leakage"
            )
        ],
        description=(
            f"Team {team.name}: vectorized backtest of every ticker's champion OOS predictions with "
            f"{team.strategy.name}, costs {team.costs.commission_bps:g}+{team.costs.slippage_bps:g} bps, "
            "against buy-and-hold of the same tickers."
        ),
    )
    def backtest(
        context: dg.AssetExecutionContext, object_store: ObjectStore
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        store = team_store(object_store, team.name)
        session = session_of(context)
        champions = session_champions(context.instance, team, session)
        try:
            step = backtest_session(team, session, champions, tracking_uri, store)
        except BacktestError as exc:
            raise dg.Failure(f"team {team.name}: {exc}") from exc
        if isinstance(step, NoChampionYet):
            context.log.warning(step.reason)
            yield dg.AssetCheckResult(
                check_name=LEAKAGE_CHECK,
                passed=True,
                metadata={"not_evaluated": "no champion yet", "missing": json_metadata(step.missing)},
            )
            return
        if step.missing:
            context.log.warning(f"backtest of {team.name} without {sorted(step.missing)}: {step.missing}")
        yield dg.MaterializeResult(
            metadata={**metadata, **_backtest_metadata(step, store, session)},
            check_results=[_leakage_check(team.name, step.result)],
            data_version=dg.DataVersion(step.version),
        )

    return [backtest]


def build_leaderboard_assets(
    teams: dict[str, TeamConfig], sessions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """``["leaderboard"]``: every team's paper equity, backtest and prediction quality, ranked."""
    rank_by = chosen_rank_metric(teams)

    @dg.asset(
        key=LEADERBOARD,
        deps=[
            *(backtest_key(name) for name in teams),
            *(dg.AssetKey([name, "reconciliation"]) for name in teams),
        ],
        partitions_def=sessions,
        # after every reconciliation of the session (a backtest then runs in the same tick)
        automation_condition=per_team_stage(*(backtest_key(name) for name in teams)),
        group_name="competition",
        kinds={"html"},
        metadata={"rank_by": rank_by, "teams": ", ".join(teams)},
        description=f"Who is winning and why, ranked by {rank_by} (teams/*.yaml leaderboard.rank_by).",
    )
    def leaderboard(context: dg.AssetExecutionContext, object_store: ObjectStore) -> dg.MaterializeResult:
        session = session_of(context)
        standings = [read_standing(team_store(object_store, name), name, session) for name in teams]
        frame = leaderboard_frame(standings, rank_by)
        page = render_html(frame, standings, rank_by, datetime.now(UTC))
        manifest = {"rank_by": rank_by, "session": session.isoformat()}
        object_store.put_parquet(session_leaderboard_key(session), frame, manifest)
        object_store.put_text(session_leaderboard_key(session, "html"), page)
        if session >= max(leaderboard_sessions(object_store)):  # the current standings follow the newest
            object_store.put_parquet(LEADERBOARD_TABLE_KEY, frame, manifest)
            object_store.put_text(LEADERBOARD_HTML_KEY, page)
        leader = frame.iloc[0] if len(frame) and pd.notna(frame.iloc[0]["rank"]) else None
        context.log.info(f"leaderboard ranked by {rank_by}: {list(frame['team'])}")
        return dg.MaterializeResult(
            metadata={
                "session": session.isoformat(),
                "rank_by": rank_by,
                "leader": str(leader["team"]) if leader is not None else "no data yet",
                "table": dg.MetadataValue.md(render_markdown(frame, rank_by)),
                "html": object_link(object_store, session_leaderboard_key(session, "html")),
            }
        )

    return [leaderboard]
