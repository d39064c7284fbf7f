from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from _monitoring_frames import crafted_features, crafted_predictions, register_champion

from mlops_pipeline.assets.common import TEAM_TAG
from mlops_pipeline.assets.monitoring import (
    TRIGGER_TAG,
    build_monitoring_assets,
    build_retrain_sensor,
    monitoring_report_key,
)
from mlops_pipeline.assets.sessions import nyse_sessions, session_ticker_key
from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import RetrainPolicy, TeamConfig, load_teams
from mlops_pipeline.market.store import features_key
from mlops_pipeline.monitoring.windows import window_sessions
from mlops_pipeline.resources.object_store import LocalObjectStore
from mlops_pipeline.serving.predictions import store_prediction

AS_OF = date(2024, 7, 10)
SESSIONS = nyse_sessions(date(2024, 1, 2), date(2024, 7, 15))


@pytest.fixture
def platform(project: Path) -> tuple[PlatformSettings, TeamConfig]:
    settings = load_settings()
    ensure_home(settings)
    team = load_teams(settings.teams_path, settings.ludwig_configs_path)["red"]
    return settings, team


def _resources(settings: PlatformSettings) -> dict:
    # No market-data resource: the report's date comes from its partition key only.
    return {"object_store": LocalObjectStore(root=str(settings.storage_root_path))}


@pytest.mark.integration  # evidently + a fresh MLflow schema + a Dagster run: about 20 s on 2 shared cores
def test_report_asset_stores_a_snapshot_summary_checks_and_champion_metrics(
    platform: tuple[PlatformSettings, TeamConfig],
) -> None:
    from mlflow.tracking import MlflowClient

    settings, team = platform
    store = LocalObjectStore(root=str(settings.storage_root_path))
    features = crafted_features(drift_from="2024-05-01", shift=4.0)
    store.put_parquet(features_key("AAPL", AS_OF), features, {"data_version": "x", "failed_checks": []})
    sessions = window_sessions(features, AS_OF, team.monitoring.window_days)
    predictions = crafted_predictions(
        features, [day for day in sessions if day != pd.Timestamp("2024-07-01")]
    )
    for record in predictions.to_dict("records"):  # serving stores one object per session
        store_prediction(store.scoped("teams/red"), "AAPL", record)
    run_id = register_champion(
        str(settings.mlflow_tracking_uri),
        Path(str(settings.mlflow_artifact_root)),
        "red",
        "AAPL",
        "2023-02-01",
        "2024-03-28",
    )

    assets = build_monitoring_assets(team, settings, SESSIONS)
    result = dg.materialize(
        assets, partition_key=session_ticker_key(AS_OF, "AAPL"), resources=_resources(settings)
    )
    assert result.success

    checks = {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}
    assert not checks["drift"].passed
    assert checks["drift"].severity == dg.AssetCheckSeverity.WARN  # red's overlay: drift_severity WARN
    assert checks["performance"].passed  # an accurate model beats "tomorrow = today"

    [materialization] = result.asset_materializations_for_node("red__monitoring_report")
    assert materialization.partition == "2024-07-10|AAPL"
    metadata = materialization.metadata
    assert metadata["as_of"].value == "2024-07-10"
    assert isinstance(metadata["drift_share"].value, float) and metadata["drift_share"].value > 0.5
    assert isinstance(metadata["mae"].value, float)
    assert metadata["missing_predictions"].value == 1
    assert metadata["missing_days"].value == ["2024-07-01"]
    assert metadata["retrain_recommended"].value is True
    assert "manual decision" in metadata["retrain_recommendation"].value  # red: on_drift false

    # The report is a snapshot in team red's evidently project, linked from the materialization.
    project, snapshot = metadata["evidently_project"].value, metadata["snapshot_id"].value
    assert metadata["snapshot"].value == f"http://127.0.0.1:8000/projects/{project}/reports/{snapshot}"
    assert metadata["dashboard"].value == f"http://127.0.0.1:8000/projects/{project}"
    stored = settings.evidently_workspace_path / project / "snapshots" / f"{snapshot}.json"
    assert stored.stat().st_size == metadata["snapshot_bytes"].value <= 300_000
    assert json.loads(stored.read_text())["tags"] == [
        "team:red",
        "ticker:AAPL",
        "session:2024-07-10",
        "model_version:1",
    ]

    team_root = settings.storage_root_path / "teams" / "red" / "monitoring"
    assert not list(team_root.rglob("*.html"))
    summary = pd.read_parquet(team_root / "summary.parquet")
    assert summary[["ticker", "status"]].values.tolist() == [["AAPL", "drift"]]

    history = MlflowClient(tracking_uri=str(settings.mlflow_tracking_uri)).get_metric_history(
        run_id, "monitoring.drift_share"
    )
    assert [(point.step, point.value) for point in history] == [(20240710, metadata["drift_share"].value)]


def test_report_reads_the_features_of_its_own_session_only(
    platform: tuple[PlatformSettings, TeamConfig],
) -> None:
    settings, team = platform
    store = LocalObjectStore(root=str(settings.storage_root_path))
    features = crafted_features()
    store.put_parquet(features_key("AAPL", AS_OF), features, {"data_version": "x", "failed_checks": []})
    result = dg.materialize(
        build_monitoring_assets(team, settings, SESSIONS),
        partition_key=session_ticker_key(date(2024, 7, 11), "AAPL"),
        resources=_resources(settings),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert (
        "no features for AAPL on 2024-07-11: materialize market/features first"
        in failure.step_failure_data.error.message
    )
    assert not (settings.storage_root_path / "teams" / "red" / "monitoring").exists()


def _report_event(
    instance: dg.DagsterInstance, team: str, ticker: str, as_of: str, recommended: bool
) -> None:
    """A report of the ``as_of`` x ``ticker`` partition (the sensor reads the date from the key)."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=monitoring_report_key(team),
            partition=session_ticker_key(date.fromisoformat(as_of), ticker),
            metadata={"retrain_recommended": recommended},
        )
    )


def _evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None
) -> dg.SensorResult:
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(result, dg.SensorResult)
    return result


def test_sensor_requests_one_retraining_per_cooldown(platform: tuple[PlatformSettings, TeamConfig]) -> None:
    _, team = platform
    eager = team.model_copy(update={"retrain": RetrainPolicy(on_drift=True, cooldown_days=5)})
    sensor = build_retrain_sensor(eager, "red_retrain")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        _report_event(instance, "red", "AAPL", "2024-07-10", True)
        _report_event(instance, "red", "AAPL", "2024-07-11", True)  # noisy: fails again the next day
        _report_event(instance, "red", "MSFT", "2024-07-11", False)
        first = _evaluate(sensor, instance, None)
        assert [r.partition_key for r in first.run_requests] == ["2024-07-10|AAPL"]
        assert first.run_requests[0].run_key == "retrain-red-AAPL-2024-07-10"
        assert first.run_requests[0].tags == {TEAM_TAG: "red", TRIGGER_TAG: "monitoring"}

        _report_event(instance, "red", "AAPL", "2024-07-12", True)
        second = _evaluate(sensor, instance, first.cursor)
        assert second.run_requests == []
        assert "cooldown" in str(second.skip_reason)

        _report_event(instance, "red", "AAPL", "2024-07-15", True)  # 5 days after the last request
        third = _evaluate(sensor, instance, second.cursor)
        assert [r.partition_key for r in third.run_requests] == ["2024-07-15|AAPL"]
        assert third.run_requests[0].run_key == "retrain-red-AAPL-2024-07-15"
        assert _evaluate(sensor, instance, third.cursor).run_requests == []  # nothing new


def test_sensor_only_recommends_when_retraining_is_manual(
    platform: tuple[PlatformSettings, TeamConfig],
) -> None:
    _, team = platform
    assert team.retrain.on_drift is False  # the default
    sensor = build_retrain_sensor(team, "red_retrain")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.instance_for_test() as instance:
        _report_event(instance, "red", "AAPL", "2024-07-10", True)
        result = _evaluate(sensor, instance, None)
        assert result.run_requests == []
        assert "manual" in str(result.skip_reason)


def test_definitions_accept_the_assets_and_the_sensor(platform: tuple[PlatformSettings, TeamConfig]) -> None:
    settings, team = platform
    assets = build_monitoring_assets(team, settings, SESSIONS)
    partitions = assets[0].partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert partitions.partition_dimension_names == ["session", "ticker"]
    keys = set(partitions.get_partition_keys())
    assert {"2024-07-10|AAPL", "2024-07-15|AAPL"} <= keys
    assert not {"2024-07-04|AAPL", "2024-07-13|AAPL"} & keys  # Independence Day, a Saturday
    retrain = dg.define_asset_job(
        "red_retrain", selection=[monitoring_report_key("red")], partitions_def=assets[0].partitions_def
    )
    defs = dg.Definitions(
        assets=assets,
        jobs=[retrain],
        sensors=[build_retrain_sensor(team, "red_retrain")],
        resources=_resources(settings),
    )
    graph = defs.resolve_asset_graph()
    assert {key.name for key in graph.asset_check_keys} == {"drift", "performance"}
    assert defs.resolve_sensor_def("red_retrain_on_monitoring") is not None
