"""Helpers of the trading tests: teams from plain dicts, a restartable sandbox, prediction rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.calendar import next_trading_day
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import RunningSandbox, start_sandbox_thread
from mlops_pipeline.serving.predictions import store_prediction

TRADING_DAY = date(2024, 6, 14)  # a Friday; the next session is Monday 2024-06-17


def make_team(name: str = "red", **overrides: Any) -> TeamConfig:
    data: dict[str, Any] = {
        "name": name,
        "tickers": ["AAPL", "MSFT", "NVDA"],
        "model": {"ludwig_config": "return_mlp.yaml"},
        "strategy": {"name": "threshold_long_flat", "params": {"threshold": 0.002}},
        "risk": {"max_position_pct": 0.25, "max_gross_exposure": 0.95, "cash_buffer_pct": 0.02},
    }
    data.update(overrides)
    return TeamConfig.model_validate(data)


class Sandbox:
    """A running sandbox whose clock the test moves, restartable on the same broker database."""

    def __init__(self, db_path: Path, today: date) -> None:
        self.db_path = db_path
        self.today = today
        self._running: RunningSandbox | None = None
        self.start()

    @property
    def url(self) -> str:
        assert self._running is not None
        return self._running.base_url

    def start(self) -> None:
        self._running = start_sandbox_thread(SandboxConfig(today=self.today, broker_db=self.db_path))

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()
            self._running = None

    def set_today(self, day: date) -> None:
        self.today = day
        response = httpx.put(f"{self.url}/_sandbox/clock", json={"today": day.isoformat()}, timeout=5)
        response.raise_for_status()

    def next_session(self) -> date:
        self.set_today(next_trading_day(self.today))
        return self.today


def prediction_frame(
    team: str, ticker: str, as_of: date, predicted_return: float, prob_up: float
) -> pd.DataFrame:
    """One row of the serving contract (``predictions/<TICKER>/<as_of_date>.parquet``)."""
    return pd.DataFrame(
        {
            "team": [team],
            "ticker": [ticker],
            "as_of_date": [pd.Timestamp(as_of)],
            "target_date": [pd.Timestamp(next_trading_day(as_of))],
            "predicted_return": [predicted_return],
            "predicted_close": [np.nan if np.isnan(predicted_return) else 100 * np.exp(predicted_return)],
            "prob_up": [prob_up],
            "predicted_direction": [int(prob_up > 0.5 if np.isfinite(prob_up) else predicted_return > 0)],
            "model_name": [f"{team}-{ticker}"],
            "model_version": ["1"],
            "run_id": ["run"],
            "latency_ms": [1.0],
            "created_at": [pd.Timestamp.now(tz="UTC")],
        }
    )


def put_prediction(team_store: ObjectStore, frame: pd.DataFrame) -> None:
    """Store a :func:`prediction_frame` row where serving stores it (its ticker and session)."""
    (record,) = frame.to_dict("records")
    store_prediction(team_store, str(record["ticker"]), record)
