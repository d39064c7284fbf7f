from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _monitoring_frames import register_champion

from mlops_pipeline.monitoring.champion import ChampionError, ChampionRegistry, date_step


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One registry for the module (creating the schema takes seconds); each test uses its own model."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


def test_champion_window_and_evaluation_error_come_from_its_run(tracking: tuple[str, Path]) -> None:
    uri, artifacts = tracking
    oos = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-02", periods=4),
            "close": [100.0, 100.0, 200.0, 200.0],
            "predicted_return": [0.0, 0.0, 0.0, 0.0],
            "actual_return": [np.log(1.01), np.log(0.99), np.log(1.01), np.nan],
            "prob_up": [np.nan] * 4,
        }
    )
    run_id = register_champion(uri, artifacts, "red", "AAPL", "2023-01-03", "2024-03-28", oos)
    registry = ChampionRegistry(uri)
    champion = registry.find("red", "AAPL", "regression")
    assert champion is not None
    assert (champion.model_name, champion.version, champion.run_id) == ("red-AAPL", "1", run_id)
    assert (champion.first_date, champion.last_date) == ("2023-01-03", "2024-03-28")
    assert champion.evaluation_error == pytest.approx((1.0 + 1.0 + 2.0) / 3)


def test_no_registered_model_means_no_champion(tracking: tuple[str, Path]) -> None:
    uri, artifacts = tracking
    register_champion(uri, artifacts, "red", "NVDA", "2023-01-03", "2024-03-28")
    registry = ChampionRegistry(uri)
    assert registry.find("red", "MSFT", "regression") is None
    champion = registry.find("red", "NVDA", "regression")
    assert champion is not None and champion.evaluation_error is None  # no OOS artifact


def test_a_bad_window_param_names_the_model_and_the_param(tracking: tuple[str, Path]) -> None:
    uri, artifacts = tracking
    register_champion(uri, artifacts, "blue", "TSLA", "2023-01-03", "last week")
    with pytest.raises(ChampionError, match=r"blue-TSLA version 1.*data.last_date='last week'"):
        ChampionRegistry(uri).find("blue", "TSLA", "direction")


def test_metrics_land_on_the_champion_run_with_the_date_as_step_once(tracking: tuple[str, Path]) -> None:
    from mlflow.tracking import MlflowClient

    uri, artifacts = tracking
    run_id = register_champion(uri, artifacts, "green", "AAPL", "2023-01-03", "2024-03-28")
    registry = ChampionRegistry(uri)
    day = date(2024, 7, 10)
    assert registry.log_metrics(run_id, day, {"mae": 1.25, "drift_share": 0.5}) == [
        "monitoring.drift_share",
        "monitoring.mae",
    ]
    assert registry.log_metrics(run_id, day, {"mae": 1.25, "drift_share": 0.5}) == []  # re-run
    registry.log_metrics(run_id, date(2024, 7, 11), {"mae": 2.0})
    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "monitoring.mae")
    assert sorted((point.step, point.value) for point in history) == [(20240710, 1.25), (20240711, 2.0)]
    assert date_step(day) == 20240710
