"""Shared terminal output for the command line: one console, one way to fail."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import TeamConfig, load_teams

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line reason (plus detail lines, if any) to stderr and exit with ``code``."""
    first, _, rest = message.partition("\n")
    err_console.print(f"[bold red]error:[/] {first}")
    if rest:
        err_console.print(rest)
    raise typer.Exit(code)


def settings_or_exit() -> PlatformSettings:
    """The settings, or exit naming the invalid variable."""
    try:
        return load_settings()
    except ValueError as exc:
        fail(f"invalid settings: {exc}")


def teams_or_exit(
    settings: PlatformSettings,
    only: list[str] | None = None,
    sources: dict[str, str] | None = None,
    blocked: dict[str, ConfigError] | None = None,
) -> dict[str, TeamConfig]:
    """Load the teams or exit with every problem. ``sources`` add to ``MLOPS_TEAM_SOURCES``. With
    ``blocked``, a team whose overlay comes from a git ref and fails is left out (and recorded
    there) instead of stopping everything."""
    try:
        return load_teams(
            settings.teams_path,
            settings.ludwig_configs_path,
            only=only,
            sources={**settings.team_sources, **(sources or {})},
            source_errors=blocked,
        )
    except ConfigError as exc:
        fail(f"invalid team configuration ({len(exc.issues)} problem(s)):\n{exc}")
