"""Build the Dagster Definitions from the platform (settings, teams, sessions): the one place.

Every date-dependent asset is partitioned by NYSE session, alone (per-team portfolio steps) or
session x ticker. Jobs follow the stages of a session; each is a partitioned asset job:

    market_daily[session|TICKER] -> <team>_train[session|TICKER] -> <team>_serve[session]
        -> <team>_predict[session|TICKER] -> <team>_trade[session] -> rank_teams[session]

A team's daily schedule launches the market data of its tickers for the session just completed;
every later stage follows by its automation condition (the automation sensor launches it once its
upstream partitions are materialized), so the whole chain runs through the instance's run
coordinator and launcher.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from mlops_pipeline.assets.automation import (
    automation_sensor,
    build_retrain_schedule,
    build_team_schedule,
    record_run_failures,
)
from mlops_pipeline.assets.common import CONFIG_HASH_TAG, TEAM_TAG
from mlops_pipeline.assets.competition import LEADERBOARD, build_competition_assets, build_leaderboard_assets
from mlops_pipeline.assets.market import build_market_assets
from mlops_pipeline.assets.monitoring import build_monitoring_assets, build_retrain_sensor
from mlops_pipeline.assets.serving import build_serving_assets
from mlops_pipeline.assets.sessions import nyse_sessions
from mlops_pipeline.assets.team import build_team_assets
from mlops_pipeline.assets.trading import build_trading_assets
from mlops_pipeline.assets.training import build_training_assets
from mlops_pipeline.config.platform import Platform
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.pool_waits import sleep_between_pool_checks
from mlops_pipeline.resources.broker import broker_from_settings
from mlops_pipeline.resources.dvc_versioning import dvc_versioning_from_settings
from mlops_pipeline.resources.market_data import market_data_from_settings
from mlops_pipeline.resources.mlflow_tracking import mlflow_tracking_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.stages import TEAM_STAGES, team_job_name

MARKET_JOB = "market_daily"
LEADERBOARD_JOB = "rank_teams"


def team_tags(team: TeamConfig) -> dict[str, str]:
    """Tags recorded on every run of the team: name, config hash and where the overlay came from."""
    tags = {TEAM_TAG: team.name, CONFIG_HASH_TAG: team.config_hash}
    if team.source is not None:
        tags.update(team.source.tags())
    return tags


def build_team_definitions(
    team: TeamConfig,
    settings: PlatformSettings,
    sessions: dg.TimeWindowPartitionsDefinition,
    market_tickers: Sequence[str],
) -> dg.Definitions:
    """Everything one team owns: its assets in every stage, its jobs, schedules and sensors
    (``market_tickers``: the shared market data's, every team's)."""
    predictions_key = dg.AssetKey([team.name, "predictions"])
    assets = [
        *build_team_assets(team, settings.ludwig_configs_path, sessions, market_tickers),
        *build_training_assets(team, settings, sessions),
        *build_serving_assets(team, settings, sessions, market_tickers),
        *build_monitoring_assets(
            team, settings, sessions, upstream=[predictions_key], market_tickers=market_tickers
        ),
        *build_trading_assets(team, settings, sessions),
        *build_competition_assets(team, settings, sessions),
    ]
    jobs = [
        dg.define_asset_job(
            team_job_name(team.name, stage),
            selection=dg.AssetSelection.assets(*(dg.AssetKey([team.name, name]) for name in stage.assets)),
            tags=team_tags(team),
            description=f"Team {team.name}: {stage.description}"
            + (" for one session and ticker." if stage.per_ticker else " for one session."),
        )
        for stage in TEAM_STAGES
    ]
    train_job = team_job_name(team.name, TEAM_STAGES[0])
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=[build_team_schedule(team, MARKET_JOB), build_retrain_schedule(team, train_job)],
        sensors=[build_retrain_sensor(team, train_job)],
    )


def build_definitions(platform: Platform) -> dg.Definitions:
    sleep_between_pool_checks()  # in every process that executes the platform's runs
    settings, teams = platform.settings, platform.teams
    sessions = nyse_sessions(platform.first_session, platform.last_session)
    market = dg.Definitions(
        assets=[*build_market_assets(sessions, platform.tickers), *build_leaderboard_assets(teams, sessions)],
        jobs=[
            dg.define_asset_job(
                MARKET_JOB,
                selection=dg.AssetSelection.groups("market"),
                description="Shared market data for one session and ticker: prices, then features, "
                "with blocking checks.",
            ),
            dg.define_asset_job(
                LEADERBOARD_JOB,
                selection=dg.AssetSelection.assets(LEADERBOARD),
                description="Rank every team after one session.",
            ),
        ],
        sensors=[record_run_failures, automation_sensor(settings.automation_interval_s)],
        # A run's steps run one after another in its process: a step's own process would cost more
        # (about 5 s to start) than most steps take. Runs of different partitions run side by side.
        executor=dg.in_process_executor,
        resources={
            "object_store": object_store_from_settings(settings),
            "market_data": market_data_from_settings(settings),
            "mlflow_tracking": mlflow_tracking_from_settings(settings),
            "dvc_versioning": dvc_versioning_from_settings(settings),
            "broker": broker_from_settings(settings),
        },
    )
    team_definitions = [
        build_team_definitions(team, settings, sessions, platform.tickers) for team in teams.values()
    ]
    return dg.Definitions.merge(market, *team_definitions)
