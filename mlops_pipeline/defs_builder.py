"""Build the Dagster Definitions from the settings and the resolved team configs (the one place).

Jobs follow the stages of the daily loop. Per-ticker stages are partitioned by ticker; portfolio
stages (serving, trading) run once per team and date:

    market_daily[TICKER] -> <team>_train[TICKER] -> <team>_serve -> <team>_predict[TICKER]
                         -> <team>_trade -> leaderboard
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from mlops_pipeline.assets.automation import (
    build_retrain_schedule,
    build_team_schedule,
    daily_loop,
    record_run_failures,
)
from mlops_pipeline.assets.competition import build_competition_assets, build_leaderboard_assets
from mlops_pipeline.assets.market import build_market_assets
from mlops_pipeline.assets.monitoring import build_monitoring_assets, build_retrain_sensor
from mlops_pipeline.assets.serving import build_serving_assets
from mlops_pipeline.assets.team import build_team_assets
from mlops_pipeline.assets.trading import build_trading_assets
from mlops_pipeline.assets.training import build_training_assets
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig, load_teams
from mlops_pipeline.resources.broker import broker_from_settings
from mlops_pipeline.resources.dvc_versioning import dvc_versioning_from_settings
from mlops_pipeline.resources.market_data import market_data_from_settings
from mlops_pipeline.resources.mlflow_tracking import mlflow_tracking_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings

MARKET_JOB = "market_daily"
LEADERBOARD_JOB = "rank_teams"


@dataclass(frozen=True)
class TeamStage:
    """One step of a team's daily loop: the job suffix, its assets, and whether it is per ticker."""

    suffix: str
    assets: tuple[str, ...]
    per_ticker: bool
    description: str


TEAM_STAGES: tuple[TeamStage, ...] = (
    TeamStage("train", ("training_dataset", "model", "champion"), True, "dataset, model and promotion gate"),
    TeamStage("serve", ("serving",), False, "deploy the champion models"),
    TeamStage("predict", ("predictions", "monitoring_report"), True, "predictions and monitoring"),
    TeamStage("trade", ("orders", "reconciliation", "backtest"), False, "orders, reconciliation, backtest"),
)


def team_job_name(team: str, stage: TeamStage) -> str:
    return f"{team}_{stage.suffix}"


def all_tickers(teams: dict[str, TeamConfig]) -> list[str]:
    """Every ticker any team trades, each once (market data is shared)."""
    return sorted({ticker for team in teams.values() for ticker in team.tickers})


def team_tags(team: TeamConfig) -> dict[str, str]:
    """Tags recorded on every run of the team: name, config hash and where the overlay came from."""
    tags = {"mlops/team": team.name, "mlops/config_hash": team.config_hash}
    if team.source is not None:
        tags.update(team.source.tags())
    return tags


def build_team_definitions(team: TeamConfig, settings: PlatformSettings) -> dg.Definitions:
    """Everything one team owns: its assets in every stage, its jobs, schedule and sensors."""
    predictions_key = dg.AssetKey([team.name, "predictions"])
    assets = [
        *build_team_assets(team, settings.ludwig_configs_path),
        *build_training_assets(team, settings),
        *build_serving_assets(team, settings),
        *build_monitoring_assets(team, settings, upstream=[predictions_key]),
        *build_trading_assets(team, settings),
        *build_competition_assets(team, settings),
    ]
    jobs = [
        dg.define_asset_job(
            team_job_name(team.name, stage),
            selection=dg.AssetSelection.assets(*(dg.AssetKey([team.name, name]) for name in stage.assets)),
            tags=team_tags(team),
            description=f"Team {team.name}: {stage.description}"
            + (" for one ticker." if stage.per_ticker else " for one trading date."),
        )
        for stage in TEAM_STAGES
    ]
    train_job = team_job_name(team.name, TEAM_STAGES[0])
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=[build_team_schedule(team), build_retrain_schedule(team, train_job)],
        sensors=[build_retrain_sensor(team, train_job)],
    )


def build_definitions(
    settings: PlatformSettings, teams: dict[str, TeamConfig] | None = None
) -> dg.Definitions:
    if teams is None:
        teams = load_teams(settings.teams_path, settings.ludwig_configs_path, sources=settings.team_sources)
    market = dg.Definitions(
        assets=[*build_market_assets(all_tickers(teams)), *build_leaderboard_assets(teams)],
        jobs=[
            dg.define_asset_job(
                MARKET_JOB,
                selection=dg.AssetSelection.groups("market"),
                description="Shared market data for one ticker: prices, then features, with blocking checks.",
            ),
            dg.define_asset_job(
                LEADERBOARD_JOB,
                selection=dg.AssetSelection.assets(dg.AssetKey(["leaderboard"])),
                description="Rank every team.",
            ),
            daily_loop,
        ],
        sensors=[record_run_failures],
        resources={
            "object_store": object_store_from_settings(settings),
            "market_data": market_data_from_settings(settings),
            "mlflow_tracking": mlflow_tracking_from_settings(settings),
            "dvc_versioning": dvc_versioning_from_settings(settings),
            "broker": broker_from_settings(settings),
        },
    )
    return dg.Definitions.merge(market, *(build_team_definitions(team, settings) for team in teams.values()))
