"""The platform as every entry point sees it: settings, the resolved teams and the session range.

:func:`load_platform` is the one loader behind the Dagster code location, the CLI, schedules and
sensors, so a team's git-ref overlay (``MLOPS_TEAM_SOURCES``) is honoured on every path. The
session range runs from ``MLOPS_SESSIONS_START`` to the last completed session of the market's
today: the real New York date, or, on the sandbox market, its configured ``MLOPS_SANDBOX_TODAY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig, load_teams
from mlops_pipeline.market.calendar import (
    EXCHANGE_TIMEZONE,
    holiday_name,
    is_trading_day,
    last_completed_trading_day,
    next_trading_day,
    previous_trading_day,
    trading_days,
)
from mlops_pipeline.sandbox_service import sandbox_today


class SessionError(ValueError):
    """A date that is not a session the platform can run (the message says why in one line)."""


def market_today(settings: PlatformSettings, now: datetime | None = None) -> date:
    """The market's today: on the sandbox market its configured today (``MLOPS_SANDBOX_TODAY``, else
    the one the sandbox at ``MLOPS_SANDBOX_URL`` was started with), else the real New York date."""
    if settings.market_data == "sandbox":
        if settings.sandbox_today is not None:
            return settings.sandbox_today
        if settings.sandbox_url:
            configured = sandbox_today(settings.sandbox_url)
            if configured is not None:
                return configured
    return (now or datetime.now(EXCHANGE_TIMEZONE)).astimezone(EXCHANGE_TIMEZONE).date()


def last_completed_session(settings: PlatformSettings, now: datetime | None = None) -> date:
    """The newest session the market has completed.

    On the sandbox market its today is complete (the sandbox serves a session after its close); on
    AlphaVantage it is the last session whose close has passed in New York.
    """
    if settings.market_data == "sandbox":
        today = market_today(settings, now)
        return today if is_trading_day(today) else previous_trading_day(today)
    return last_completed_trading_day(now)


@dataclass(frozen=True)
class Platform:
    """Settings, teams and the range of sessions that are partitions (both ends inclusive)."""

    settings: PlatformSettings
    teams: dict[str, TeamConfig]
    first_session: date
    last_session: date

    @property
    def tickers(self) -> list[str]:
        """Every ticker any team trades, each once (market data is shared)."""
        return sorted({ticker for team in self.teams.values() for ticker in team.tickers})

    def check_session(self, day: date) -> date:
        """``day`` if it is a session in range; otherwise :class:`SessionError` saying why."""
        if not is_trading_day(day):
            reason = holiday_name(day) or ("a Saturday" if day.weekday() == 5 else "a Sunday")
            raise SessionError(f"{day} is not an NYSE session ({reason})")
        if day > self.last_session:
            raise SessionError(f"{day} is after the last completed session {self.last_session}")
        if day < self.first_session:
            raise SessionError(
                f"{day} is before the first session {self.first_session} (MLOPS_SESSIONS_START)"
            )
        return day

    def check_range(self, start: date, end: date) -> tuple[date, date]:
        """A session range inside the partitions, or :class:`SessionError` naming the valid range."""
        valid = f"the valid range is {self.first_session} to {self.last_session}"
        if end < start:
            raise SessionError(f"--to {end} is before --from {start}")
        if start < self.first_session or end > self.last_session:
            raise SessionError(f"{start} to {end} is outside the sessions: {valid}")
        if len(trading_days(start, end)) == 0:
            raise SessionError(f"no NYSE session between {start} and {end}")
        return start, end


def load_platform(
    settings: PlatformSettings,
    only: list[str] | None = None,
    sources: dict[str, str] | None = None,
    blocked: dict[str, ConfigError] | None = None,
) -> Platform:
    """Settings + teams (git-ref sources included) + the session range: one loader for every path."""
    merged_sources = {**settings.team_sources, **(sources or {})}
    teams = load_teams(
        settings.teams_path, settings.ludwig_configs_path, only=only, sources=merged_sources,
        source_errors=blocked,
    )  # fmt: skip
    last = last_completed_session(settings)
    first = settings.sessions_start
    if not is_trading_day(first):
        first = next_trading_day(first)
    if last < first:
        raise ConfigError.single(
            "settings",
            "MLOPS_SESSIONS_START",
            f"{settings.sessions_start} is after the last completed session {last}",
        )
    return Platform(settings=settings, teams=teams, first_session=first, last_session=last)
