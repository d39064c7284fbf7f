"""Build the Dagster Definitions from the settings and the resolved team configs (the one place)."""

from __future__ import annotations

import dagster as dg

from mlops_pipeline.assets.automation import build_team_schedule, daily_loop, record_run_failures
from mlops_pipeline.assets.market import build_market_assets
from mlops_pipeline.assets.team import build_team_assets
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig, load_teams
from mlops_pipeline.resources.factory import market_data_from_settings, object_store_from_settings

MARKET_JOB = "market_daily"


def team_job_name(team: str) -> str:
    return f"{team}_daily"


def all_tickers(teams: dict[str, TeamConfig]) -> list[str]:
    """Every ticker any team trades, each once (market data is shared)."""
    return sorted({ticker for team in teams.values() for ticker in team.tickers})


def build_definitions(
    settings: PlatformSettings, teams: dict[str, TeamConfig] | None = None
) -> dg.Definitions:
    if teams is None:
        teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    tickers = all_tickers(teams)
    assets: list[dg.AssetsDefinition] = build_market_assets(tickers)
    jobs = [
        dg.define_asset_job(
            MARKET_JOB,
            selection=dg.AssetSelection.groups("market"),
            description="Shared market data for one ticker: prices, then features (with blocking checks).",
        )
    ]
    for name, team in teams.items():
        assets += build_team_assets(team, settings.ludwig_configs_path)
        jobs.append(
            dg.define_asset_job(
                team_job_name(name),
                selection=dg.AssetSelection.groups(name),
                tags={"mlops/team": name, "mlops/config_hash": team.config_hash},
                description=f"Team {name}'s daily assets for one ticker.",
            )
        )
    return dg.Definitions(
        assets=assets,
        jobs=[*jobs, daily_loop],
        schedules=[build_team_schedule(team) for team in teams.values()],
        sensors=[record_run_failures],
        resources={
            "object_store": object_store_from_settings(settings),
            "market_data": market_data_from_settings(settings),
        },
    )
