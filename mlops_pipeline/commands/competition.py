"""Command-line pieces of the competition: ``mlops leaderboard`` and ``mlops teams diff``.

Imports of the competition's modules stay inside the commands, so ``mlops --help`` loads none of
them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlops_pipeline.console import console, settings_or_exit, teams_or_exit

if TYPE_CHECKING:
    from mlops_pipeline.config.settings import PlatformSettings
    from mlops_pipeline.config.teams import TeamConfig


def leaderboard_command(
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML page to this file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Rank the teams: paper equity and return, backtest statistics, prediction quality."""
    from datetime import UTC, datetime

    from mlops_pipeline.competition.leaderboard import (
        TeamStanding,
        chosen_rank_metric,
        leaderboard_frame,
        render_html,
        render_terminal,
    )
    from mlops_pipeline.competition.team_inputs import read_standing
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.resources.object_store import object_store_from_settings
    from mlops_pipeline.team_store import team_store

    settings = settings_or_exit()
    errors: dict[str, ConfigError] = {}
    teams = teams_or_exit(settings, blocked=errors)
    store = object_store_from_settings(settings)
    standings = [read_standing(team_store(store, name), name) for name in teams]
    standings += [
        TeamStanding(team=name, notes=[f"overlay invalid: {str(error).splitlines()[0]}"])
        for name, error in errors.items()
    ]
    rank_by = chosen_rank_metric(teams)
    frame = leaderboard_frame(standings, rank_by)
    if as_json:
        records = json.loads(frame.to_json(orient="records"))
        console.print_json(json.dumps({"rank_by": rank_by, "teams": records}))
    else:
        console.print(render_terminal(frame, rank_by))
    if html is not None:
        html.write_text(render_html(frame, standings, rank_by, datetime.now(UTC)), encoding="utf-8")
        console.print(f"HTML page: {html}")


def _side(settings: PlatformSettings, spec: str) -> TeamConfig:
    name, _, ref = spec.partition("@")
    sources = {name: f"git:{ref}"} if ref else settings.team_sources
    return teams_or_exit(settings, [name], {k: v for k, v in sources.items() if k == name})[name]


def _origin(team: TeamConfig) -> str:
    return team.source.display if team.source is not None else team.name


def teams_diff_command(
    left: Annotated[str, typer.Argument(help="TEAM or TEAM@REF, e.g. red or red@team/red")],
    right: Annotated[str, typer.Argument(help="TEAM or TEAM@REF")],
) -> None:
    """Show how two resolved team configs differ (base.yaml merged with each overlay)."""
    from mlops_pipeline.competition.config_diff import diff_configs

    settings = settings_or_exit()
    first, second = _side(settings, left), _side(settings, right)
    differences = diff_configs(first, second)
    title = (
        f"{left} ({_origin(first)}, {first.config_hash}) vs {right} ({_origin(second)}, {second.config_hash})"
    )
    if not differences:
        console.print(f"{title}: no differences")
        return
    table = Table(title=title)
    for column in ("key", left, right):
        table.add_column(column)
    for difference in differences:
        table.add_row(difference.key, json.dumps(difference.left), json.dumps(difference.right))
    console.print(table)
