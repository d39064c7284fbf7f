"""The serving deployment and predictions assets, end to end with a local model server process."""

from __future__ import annotations

import math
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from _serving_models import Registry, feature_frame

from mlops_pipeline.assets.serving import DEPLOYMENT_KEY, build_serving_assets
from mlops_pipeline.assets.team import team_store
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.market.features import FEATURE_TABLE_COLUMNS
from mlops_pipeline.market.store import features_key
from mlops_pipeline.resources.market_data import market_data_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.serving.launch import Deployment
from mlops_pipeline.serving.launch_process import ProcessLauncher
from mlops_pipeline.serving.predictions import PREDICTION_COLUMNS, interpret, upsert_prediction

AS_OF = date(2024, 7, 3)  # a Wednesday before the July 4th holiday: the target is Friday the 5th


def _features(days: int) -> pd.DataFrame:
    base = feature_frame(days, seed=9)
    frame = pd.DataFrame({"date": pd.bdate_range(end=pd.Timestamp(AS_OF), periods=days)})
    for column in FEATURE_TABLE_COLUMNS[1:]:
        frame[column] = base[column] if column in base else np.linspace(100, 110, days)
    frame.loc[days - 1, ["target_next_close", "target_next_return", "target_next_direction"]] = np.nan
    return frame


def test_interpret_each_target_kind() -> None:
    up = interpret({"target_next_return_predictions": 0.01}, close=100.0)
    assert up["predicted_close"] == pytest.approx(100 * math.exp(0.01)) and up["predicted_direction"] == 1
    assert math.isnan(up["prob_up"])
    down = interpret({"target_next_close_predictions": 99.0}, close=100.0)
    assert down["predicted_return"] == pytest.approx(math.log(0.99)) and down["predicted_direction"] == 0
    direction = interpret(
        {"target_next_direction_predictions": True, "target_next_direction_probabilities_True": 0.7}, 100.0
    )
    assert direction["prob_up"] == 0.7 and direction["predicted_direction"] == 1
    assert math.isnan(direction["predicted_return"]) and math.isnan(direction["predicted_close"])


def test_upsert_replaces_the_row_of_the_same_as_of_date(tmp_path) -> None:
    from mlops_pipeline.resources.object_store import LocalObjectStore

    store = LocalObjectStore(root=str(tmp_path))
    record = {column: None for column in PREDICTION_COLUMNS} | {
        "as_of_date": pd.Timestamp(AS_OF),
        "predicted_return": 0.1,
    }
    upsert_prediction(store, "AAPL", record)
    upsert_prediction(store, "AAPL", record | {"as_of_date": pd.Timestamp("2024-07-05")})
    frame, _ = upsert_prediction(store, "AAPL", record | {"predicted_return": 0.2})
    assert frame["as_of_date"].tolist() == [pd.Timestamp(AS_OF), pd.Timestamp("2024-07-05")]
    assert frame["predicted_return"].tolist() == [0.2, 0.1]


@pytest.mark.slow
def test_serving_then_predictions_assets(project, registry: Registry, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")
    settings = load_settings()
    team = load_teams(settings.teams_path, settings.ludwig_configs_path)["red"]
    team = team.model_copy(update={"tickers": ["AAPL", "MSFT"]})
    serving, predictions = build_serving_assets(team, settings)
    object_store = object_store_from_settings(settings)
    object_store.put_parquet(features_key("AAPL"), _features(40), {"data_version": "test"})
    resources = {"object_store": object_store, "market_data": market_data_from_settings(settings)}

    deployed = dg.materialize([serving], resources=resources)
    store = team_store(object_store, "red")
    deployment = Deployment.from_json(store.get_text(DEPLOYMENT_KEY))
    try:
        metadata = deployed.asset_materializations_for_node("red__serving")[0].metadata
        assert metadata["endpoint_url"].value == deployment.endpoint_url
        assert metadata["launcher"].value == "process" and metadata["pid"].value == deployment.instance_id
        assert set(metadata["model_versions"].value) == {"red-AAPL", "red-MSFT"}

        for _ in range(2):  # a re-run for the same date replaces its row
            result = dg.materialize(
                [predictions], resources=resources, partition_key="AAPL", tags={"mlops/as_of": str(AS_OF)}
            )
            assert result.success
        frame = store.get_parquet("predictions/AAPL.parquet")
        assert list(frame.columns) == PREDICTION_COLUMNS and len(frame) == 1
        row = frame.iloc[0]
        assert (row["team"], row["ticker"], row["model_name"]) == ("red", "AAPL", "red-AAPL")
        assert row["as_of_date"] == pd.Timestamp(AS_OF) and row["target_date"] == pd.Timestamp("2024-07-05")
        assert row["model_version"] == deployment.models["red-AAPL"]["version"]
        assert row["run_id"] == registry.run_ids["red-AAPL"] and row["latency_ms"] > 0
        assert row["predicted_close"] == pytest.approx(110 * math.exp(row["predicted_return"]))
    finally:
        ProcessLauncher(tmp_path).stop(deployment.instance_id)
