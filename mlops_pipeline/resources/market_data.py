"""Daily prices from AlphaVantage or from the platform's sandbox (same client, same wire format)."""

from __future__ import annotations

from datetime import date
from typing import Literal

import dagster as dg
from pydantic import Field

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.market.alphavantage import AlphaVantageClient, DailySeries, OutputSize
from mlops_pipeline.market.budget import RequestBudget
from mlops_pipeline.sandbox.defaults import DEFAULT_PREMIUM_KEY
from mlops_pipeline.sandbox.sessions import SESSION_HEADER

SANDBOX_API_KEY = DEFAULT_PREMIUM_KEY


class MarketDataResource(dg.ConfigurableResource):
    """One AlphaVantage-compatible source. The API key should be given as ``dg.EnvVar`` so that
    its value never appears in run config or the UI."""

    source: Literal["sandbox", "alphavantage"] = "sandbox"
    base_url: str
    api_key: str
    premium: bool = Field(description="Full history and split-adjusted prices (premium key or sandbox)")
    daily_budget: int = Field(default=25, ge=0, description="Requests per day; 0 = unlimited")
    min_interval_s: float = Field(default=1.0, ge=0)
    budget_path: str = Field(description="SQLite file shared by every run that uses this key")
    timeout_s: float = 30.0
    max_retries: int = 3

    def budget(self) -> RequestBudget:
        """The key's daily request budget, shared through ``budget_path`` by every run and team."""
        return RequestBudget(
            self.budget_path, self.api_key, daily_limit=self.daily_budget, min_interval_s=self.min_interval_s
        )

    def _client(self, session: date) -> AlphaVantageClient:
        # The sandbox answers as of the requested session; AlphaVantage answers as of today and
        # the caller keeps the rows up to the session.
        headers = {SESSION_HEADER: session.isoformat()} if self.source == "sandbox" else None
        return AlphaVantageClient(
            self.api_key,
            base_url=self.base_url,
            premium=self.premium,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            budget=self.budget(),
            headers=headers,
        )

    def fetch_daily(self, symbol: str, outputsize: OutputSize, adjusted: bool, session: date) -> DailySeries:
        """The daily series of ``symbol`` as known after ``session``."""
        with self._client(session) as client:
            return client.daily(symbol, outputsize=outputsize, adjusted=adjusted)

    def budget_remaining(self) -> int | None:
        """Requests left today (``None``: unlimited)."""
        return self.budget().remaining()


def market_data_from_settings(settings: PlatformSettings) -> MarketDataResource:
    """The sandbox (embedded default: premium-like, unlimited) or AlphaVantage with the user's key."""
    budget_path = str(settings.home_dir / "alphavantage-budget.sqlite")
    if settings.market_data == "sandbox":
        return MarketDataResource(
            source="sandbox",
            base_url=settings.sandbox_url or f"http://127.0.0.1:{settings.sandbox_port}",
            api_key=SANDBOX_API_KEY,
            premium=True,
            daily_budget=0,
            min_interval_s=0.0,
            budget_path=budget_path,
        )
    return MarketDataResource(
        source="alphavantage",
        base_url=settings.alphavantage_base_url,
        api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY"),
        premium=settings.alphavantage_premium,
        daily_budget=settings.alphavantage_daily_budget,
        min_interval_s=settings.alphavantage_min_interval_s,
        budget_path=budget_path,
    )
