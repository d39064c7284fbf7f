"""The session-partitioned serving deployment and the session x ticker predictions, end to end with a
local model server process."""

from __future__ import annotations

import math
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from _serving_models import Registry, feature_frame

from mlops_pipeline.assets.serving import build_serving_assets
from mlops_pipeline.assets.sessions import nyse_sessions, session_ticker_key
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.market.features import FEATURE_TABLE_COLUMNS
from mlops_pipeline.market.store import features_key
from mlops_pipeline.resources.object_store import LocalObjectStore, object_store_from_settings
from mlops_pipeline.serving.launch import Deployment
from mlops_pipeline.serving.launch_process import ProcessLauncher
from mlops_pipeline.serving.predictions import (
    interpret,
    read_predictions,
    store_prediction,
    stored_prediction,
)
from mlops_pipeline.team_store import (
    LIVE_DEPLOYMENT_KEY,
    PREDICTION_COLUMNS,
    prediction_key,
    session_deployment_key,
    team_store,
)

AS_OF = date(2024, 7, 3)  # a Wednesday before the July 4th holiday: the target is Friday the 5th
SESSIONS = nyse_sessions(date(2024, 6, 3), date(2024, 7, 31))


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


def test_each_session_stores_its_own_prediction_and_a_rerun_replaces_it(tmp_path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    record = {column: None for column in PREDICTION_COLUMNS} | {
        "as_of_date": pd.Timestamp(AS_OF),
        "predicted_return": 0.1,
    }
    friday = date(2024, 7, 5)
    store_prediction(store, "AAPL", record | {"as_of_date": pd.Timestamp(friday)})
    store_prediction(store, "AAPL", record)
    uri = store_prediction(store, "AAPL", record | {"predicted_return": 0.2})

    assert sorted(store.list_keys("predictions/AAPL/")) == [
        prediction_key("AAPL", AS_OF),
        prediction_key("AAPL", friday),
    ]
    assert prediction_key("AAPL", AS_OF) == "predictions/AAPL/2024-07-03.parquet"
    assert uri.endswith("predictions/AAPL/2024-07-03.parquet")
    assert len(store.get_parquet(prediction_key("AAPL", AS_OF))) == 1
    frame = read_predictions(store, "AAPL")
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame["as_of_date"].tolist() == [pd.Timestamp(AS_OF), pd.Timestamp(friday)]
    assert frame["predicted_return"].tolist() == [0.2, 0.1]
    assert stored_prediction(store, "AAPL", friday)["predicted_return"] == 0.1
    assert stored_prediction(store, "AAPL", date(2024, 7, 2)) is None
    assert read_predictions(store, "MSFT") is None


@pytest.mark.integration
def test_serving_then_predictions_assets(project, registry: Registry, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")
    settings = load_settings()
    team = load_teams(settings.teams_path, settings.ludwig_configs_path)["red"]
    team = team.model_copy(update={"tickers": ["AAPL", "MSFT"]})
    serving, predictions = build_serving_assets(team, settings, SESSIONS)
    assert serving.partitions_def == SESSIONS
    object_store = object_store_from_settings(settings)
    object_store.put_parquet(features_key("AAPL", AS_OF), _features(40), {"data_version": "test"})
    resources = {"object_store": object_store}

    deployed = dg.materialize([serving], resources=resources, partition_key=AS_OF.isoformat())
    store = team_store(object_store, "red")
    deployment = Deployment.from_json(store.get_text(LIVE_DEPLOYMENT_KEY))
    try:
        # the session's own record of the deployment that serves its predictions
        assert store.get_text(session_deployment_key(AS_OF)) == deployment.to_json()
        metadata = deployed.asset_materializations_for_node("red__serving")[0].metadata
        assert metadata["endpoint_url"].value == deployment.endpoint_url
        assert metadata["launcher"].value == "process" and metadata["pid"].value == deployment.instance_id
        assert set(metadata["model_versions"].value) == {"red-AAPL", "red-MSFT"}

        key = session_ticker_key(AS_OF, "AAPL")
        assert str(key) == "2024-07-03|AAPL"
        first = dg.materialize([predictions], resources=resources, partition_key=str(key))
        (made,) = first.asset_materializations_for_node("red__predictions")
        assert made.partition == "2024-07-03|AAPL"
        assert made.metadata["as_of"].value == "2024-07-03"
        assert made.metadata["target_date"].value == "2024-07-05"
        rerun = dg.materialize([predictions], resources=resources, partition_key=str(key))
        (kept,) = rerun.asset_materializations_for_node("red__predictions")
        assert kept.metadata["kept_existing"].value is True  # a rerun keeps what was traded on

        assert store.list_keys("predictions/") == [prediction_key("AAPL", AS_OF)]
        frame = store.get_parquet(prediction_key("AAPL", AS_OF))
        assert list(frame.columns) == PREDICTION_COLUMNS and len(frame) == 1
        row = frame.iloc[0]
        assert (row["team"], row["ticker"], row["model_name"]) == ("red", "AAPL", "red-AAPL")
        assert row["as_of_date"] == pd.Timestamp(AS_OF) and row["target_date"] == pd.Timestamp("2024-07-05")
        assert row["model_version"] == deployment.models["red-AAPL"]["version"]
        assert kept.metadata["model_version"].value == str(row["model_version"])
        assert row["run_id"] == registry.run_ids["red-AAPL"] and row["latency_ms"] > 0
        assert row["predicted_close"] == pytest.approx(110 * math.exp(row["predicted_return"]))

        # a session without a recorded deployment has no prediction, whatever is live now
        tuesday = session_ticker_key(date(2024, 7, 2), "AAPL")
        earlier = dg.materialize([predictions], resources=resources, partition_key=str(tuesday))
        assert earlier.success and earlier.asset_materializations_for_node("red__predictions") == []
        assert not store.exists(prediction_key("AAPL", date(2024, 7, 2)))
    finally:
        ProcessLauncher(tmp_path).stop(deployment.instance_id)


def _red_deployment(version: str) -> str:
    """A recorded deployment of red-AAPL ``version`` (no server behind it)."""
    models = {"red-AAPL": {"version": version, "run_id": f"run-{version}"}}
    return Deployment("red", "process", "http://127.0.0.1:9", models, "code", "1").to_json()


def test_a_later_model_never_predicts_a_past_session(project) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings()
    team = load_teams(settings.teams_path, settings.ludwig_configs_path, only=["red"])["red"]
    _, predictions = build_serving_assets(team, settings, SESSIONS)
    object_store = object_store_from_settings(settings)
    store = team_store(object_store, "red")

    store.put_text(session_deployment_key(AS_OF), _red_deployment("1"))
    store.put_text(LIVE_DEPLOYMENT_KEY, _red_deployment("2"))  # a later session promoted version 2
    object_store.put_parquet(features_key("AAPL", AS_OF), _features(40), {"data_version": "test"})
    result = dg.materialize(
        [predictions],
        resources={"object_store": object_store},
        partition_key=str(session_ticker_key(AS_OF, "AAPL")),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert "deployment served version 1, the model server now serves 2" in message
    assert store.list_keys("predictions/") == []


def test_a_past_session_keeps_its_deployment_and_deploys_nothing(project) -> None:  # type: ignore[no-untyped-def]
    """Re-materializing the serving of a session before the newest deployed one never records
    today's models for it (they would then predict that past session) and starts no server."""
    settings = load_settings()
    team = load_teams(settings.teams_path, settings.ludwig_configs_path, only=["red"])["red"]
    serving, _ = build_serving_assets(team, settings, SESSIONS)
    object_store = object_store_from_settings(settings)
    store = team_store(object_store, "red")

    monday, tuesday = date(2024, 7, 1), date(2024, 7, 2)
    then, now = _red_deployment("1"), _red_deployment("2")
    store.put_text(session_deployment_key(monday), then)
    store.put_text(session_deployment_key(AS_OF), now)
    store.put_text(LIVE_DEPLOYMENT_KEY, now)

    def materialize(day: date) -> dg.ExecuteInProcessResult:
        resources = {"object_store": object_store}
        return dg.materialize([serving], resources=resources, partition_key=day.isoformat())

    kept = materialize(monday)
    (materialized,) = kept.asset_materializations_for_node("red__serving")
    assert materialized.metadata["kept_past_session"].value is True
    assert materialized.metadata["model_versions"].value == {"red-AAPL": "1"}
    assert store.get_text(session_deployment_key(monday)) == then

    never_served = materialize(tuesday)
    assert never_served.success and never_served.asset_materializations_for_node("red__serving") == []
    assert not store.exists(session_deployment_key(tuesday))
    assert store.get_text(LIVE_DEPLOYMENT_KEY) == now
    assert not (settings.home_dir / "serving" / "red").exists()  # no launcher ran
