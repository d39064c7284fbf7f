"""Shared terminal output for the command line: one console, one way to fail.

Kept light: ``mlops --help`` imports this module, so settings, teams and every library behind them
are imported only by the functions that need them. User text is never parsed as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.config.settings import PlatformSettings
    from mlops_pipeline.config.teams import TeamConfig

# No markup anywhere: paths, team names, settings and exception messages print as they are; styles
# are given as ``Text`` spans (see ``labelled``).
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)

RUNTIME_FAILURE = 1
USAGE_ERROR = 2  # bad options or input: a date that is no session, an unknown team, an invalid file


def fail(message: str, code: int = RUNTIME_FAILURE) -> NoReturn:
    """Print a one-line reason (plus detail lines, if any) to stderr and exit with ``code``."""
    first, _, rest = message.partition("\n")
    err_console.print(labelled("error:", first), soft_wrap=True)
    if rest:
        err_console.print(rest, soft_wrap=True)
    raise typer.Exit(code)


def labelled(label: str, text: str, style: str = "bold red") -> Text:
    """``label`` in ``style``, then ``text`` as it is (never read as markup)."""
    return Text.assemble((label, style), " ", text)


def usage_error(message: str) -> NoReturn:
    """Exit 2 with the reason: the command line or the input it names is wrong, nothing ran."""
    fail(message, code=USAGE_ERROR)


def settings_or_exit() -> PlatformSettings:
    """The settings, or exit naming the invalid variable."""
    from mlops_pipeline.config.settings import load_settings

    try:
        return load_settings()
    except ValueError as exc:
        usage_error(f"invalid settings: {exc}")


def teams_or_exit(
    settings: PlatformSettings,
    only: list[str] | None = None,
    sources: dict[str, str] | None = None,
    blocked: dict[str, ConfigError] | None = None,
    code: int = USAGE_ERROR,
) -> dict[str, TeamConfig]:
    """Load the teams or exit with every problem (and ``code``). ``sources`` add to
    ``MLOPS_TEAM_SOURCES``. With ``blocked``, a team whose overlay comes from a git ref and fails
    is left out (and recorded there) instead of stopping everything."""
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.config.teams import load_teams

    try:
        return load_teams(
            settings.teams_path,
            settings.ludwig_configs_path,
            only=only,
            sources={**settings.team_sources, **(sources or {})},
            source_errors=blocked,
        )
    except ConfigError as exc:
        fail(f"invalid team configuration ({len(exc.issues)} problem(s)):\n{exc}", code)
