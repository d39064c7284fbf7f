"""``monitoring`` commands: the team's evidently snapshots outside the UI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from mlops_pipeline.console import console, fail, settings_or_exit, teams_or_exit, usage_error

monitoring_app = typer.Typer(no_args_is_help=True)


@monitoring_app.callback()
def monitoring() -> None:
    """Monitoring snapshots (dashboards and reports are in the evidently UI, started by `mlops ui`)."""


@monitoring_app.command("export")
def export_command(
    team: Annotated[str, typer.Option("--team", metavar="TEAM", help="The team")],
    ticker: Annotated[str, typer.Option("--ticker", metavar="TICKER", help="One of the team's tickers")],
    day: Annotated[
        datetime,
        typer.Option("--date", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="The session of the report"),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file to write (default ./<team>-<TICKER>-<date>.html)"),
    ] = None,
) -> None:
    """Write the evidently report of one team, ticker and session as a self-contained HTML file."""

    from mlops_pipeline.monitoring.publish import MonitoringExportError, export_html
    from mlops_pipeline.monitoring.workspace import WorkspaceError, workspace_from_settings
    from mlops_pipeline.resources.object_store import object_store_from_settings
    from mlops_pipeline.team_store import team_store

    settings = settings_or_exit()
    config = teams_or_exit(settings, only=[team])[team]
    symbol = ticker.upper()
    if symbol not in config.tickers:
        usage_error(f"team {team} does not trade {ticker}; its tickers: {', '.join(config.tickers)}")
    session = day.date()
    target = output or Path(f"{team}-{symbol}-{session.isoformat()}.html")
    if target.is_dir():
        usage_error(f"--output {target} is a folder; name the HTML file to write")
    store = team_store(object_store_from_settings(settings), team)
    try:
        html = export_html(workspace_from_settings(settings), store, team, symbol, session)
    except (MonitoringExportError, WorkspaceError) as exc:
        fail(str(exc))
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(target)
    console.print(f"{target} ({len(html.encode('utf-8')):,} bytes)", soft_wrap=True)
