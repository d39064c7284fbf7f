"""Settings of the sandbox server."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_pipeline.sandbox.defaults import DEFAULT_PREMIUM_KEY
from mlops_pipeline.sandbox.market import SplitTable

DEFAULT_PREMIUM_KEYS = frozenset({DEFAULT_PREMIUM_KEY})
DEFAULT_ALPACA_ASSETS = frozenset(
    {
        "AAPL",
        "AMD",
        "AMZN",
        "GOOGL",
        "IBM",
        "INTC",
        "JPM",
        "META",
        "MSFT",
        "NFLX",
        "NVDA",
        "SPY",
        "TSLA",
        "XOM",
    }
)


class SandboxConfig(BaseModel):
    """How the sandbox's market, clock and AlphaVantage limits behave.

    ``today`` pins the sandbox date (``None`` follows the real date in America/New_York); it can
    also be changed at runtime through ``PUT /_sandbox/clock``. It is also the latest session a
    request may ask for with ``X-Sandbox-Session`` (whatever the global clock says).
    ``daily_limit`` is the number of requests a free key may make per sandbox day (``None`` or 0:
    unlimited); ``burst_per_second`` is the most requests per second a free key may make (``None``:
    not enforced).

    The Alpaca paper broker keeps its accounts, orders and positions in the SQLite file
    ``broker_db`` (``None``: in memory, lost when the server stops); every new account starts with
    ``starting_cash``; ``GET /v2/assets`` lists ``alpaca_assets`` plus every symbol ever ordered
    (any listed symbol can be looked up and traded).

    ``recorded`` is a folder of ``<SYMBOL>.csv`` recordings (see :mod:`mlops_pipeline.sandbox.recorded`)
    served instead of the synthetic market for those symbols; with ``recorded_only`` no other symbol
    is listed.
    """

    model_config = ConfigDict(frozen=True)

    today: date | None = None
    seed: int = 7
    market_start: date = date(2000, 1, 3)
    splits: SplitTable | None = None
    premium_keys: frozenset[str] = DEFAULT_PREMIUM_KEYS
    demo_symbols: frozenset[str] = frozenset({"IBM"})
    daily_limit: int | None = Field(default=25, ge=0)
    burst_per_second: float | None = Field(default=None, gt=0)
    broker_db: Path | None = None
    starting_cash: float = Field(default=100_000.0, gt=0)
    alpaca_assets: frozenset[str] = DEFAULT_ALPACA_ASSETS
    recorded: Path | None = None
    recorded_only: bool = False

    @model_validator(mode="after")
    def _recorded_only_needs_a_recording(self) -> SandboxConfig:
        if self.recorded_only and self.recorded is None:
            raise ValueError("recorded_only needs a recording folder (recorded)")
        return self
