"""The broker: each team's Alpaca account through alpaca-py, or the platform's sandbox broker.

Keys are read from the environment variables the team overlay names (``broker.api_key_env`` /
``broker.secret_key_env``) when a team's client is built, never from config. Accounts are paper
accounts unless ``live`` is set (``MLOPS_ALPACA_LIVE=true`` with ``MLOPS_BROKER=alpaca``; never a
default). With the sandbox, a team whose variables are unset trades the sandbox account
``sandbox-<team>`` (the sandbox opens an account for any key on first use), so the embedded
default needs no keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from typing import Literal

import dagster as dg
from pydantic import Field

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.sandbox.sessions import SESSION_HEADER
from mlops_pipeline.sandbox_service import embedded_sandbox_url
from mlops_pipeline.trading.broker_client import BrokerClient, BrokerCredentialsError


class BrokerResource(dg.ConfigurableResource):
    """Where the teams' Alpaca accounts are: the sandbox (``url`` set) or Alpaca itself."""

    mode: Literal["sandbox", "alpaca"] = "sandbox"
    url: str | None = Field(
        default=None, description="Trading and market-data URL override (the sandbox, MLOPS_ALPACA_URL)"
    )
    live: bool = Field(default=False, description="Live accounts (real money) instead of paper")
    timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, description="Retries of 429/5xx answers")
    retry_backoff_s: float = Field(default=0.5, ge=0)

    def client_for(
        self, team: TeamConfig, session: date | None = None, environ: Mapping[str, str] | None = None
    ) -> BrokerClient:
        """The team's account; :class:`BrokerCredentialsError` names a missing variable.

        On the sandbox every request carries ``session`` (the sandbox's broker then acts after that
        session's close); Alpaca itself always acts now.
        """
        environ = os.environ if environ is None else environ
        names = (team.broker.api_key_env, team.broker.secret_key_env)
        api_key, secret_key = (environ.get(name, "") for name in names)
        if self.mode == "sandbox" and not api_key and not secret_key:
            api_key, secret_key = f"sandbox-{team.name}", f"sandbox-{team.name}-secret"
        missing = [name for name, value in zip(names, (api_key, secret_key), strict=True) if not value]
        if missing:
            raise BrokerCredentialsError(
                f"team {team.name}: environment variable(s) {', '.join(missing)} not set "
                f"(the {'live' if self.live else 'paper'} Alpaca keys named by broker: in the team overlay)"
            )
        return BrokerClient(
            api_key,
            secret_key,
            credentials_hint=" and ".join(names),
            paper=not self.live,
            trading_url=self.url,
            data_url=self.url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            retry_backoff_s=self.retry_backoff_s,
            headers={SESSION_HEADER: session.isoformat()} if self.mode == "sandbox" and session else None,
        )


def broker_from_settings(settings: PlatformSettings) -> BrokerResource:
    """The sandbox by default; with ``MLOPS_BROKER=alpaca``, Alpaca (paper unless ``MLOPS_ALPACA_LIVE``)."""
    timeout_s = settings.broker_timeout_s
    if settings.broker == "sandbox":
        return BrokerResource(mode="sandbox", url=embedded_sandbox_url(settings), timeout_s=timeout_s)
    return BrokerResource(
        mode="alpaca", url=settings.alpaca_url, live=settings.alpaca_live, timeout_s=timeout_s
    )
