"""Trading fixtures: a private sandbox per test, a local object store, prediction files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from _trading_helpers import TRADING_DAY, Sandbox, prediction_frame, put_prediction

from mlops_pipeline.resources.object_store import LocalObjectStore, ObjectStore


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    running = Sandbox(tmp_path / "broker.sqlite", TRADING_DAY)
    yield running
    running.stop()


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects"))


@pytest.fixture
def write_predictions(store: ObjectStore) -> Callable[..., None]:
    """``write_predictions(team, as_of, {"AAPL": 0.01, ...}, prob_up={...})`` into the team store."""

    def write(
        team: str, as_of: date, returns: dict[str, float], prob_up: dict[str, float] | None = None
    ) -> None:
        team_store = store.scoped(f"teams/{team}")
        for ticker in sorted(set(returns) | set(prob_up or {})):
            frame = prediction_frame(
                team, ticker, as_of, returns.get(ticker, np.nan), (prob_up or {}).get(ticker, np.nan)
            )
            put_prediction(team_store, frame)

    return write
