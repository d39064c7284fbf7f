"""The model asset refuses bad input before training, with a reason naming what is wrong."""

from __future__ import annotations

from datetime import date

import dagster as dg
import yaml
from _training_data import put_market_data

from mlops_pipeline.assets.sessions import nyse_sessions, session_ticker_key
from mlops_pipeline.assets.training import build_training_assets
from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.market.store import features_key
from mlops_pipeline.resources.dvc_versioning import dvc_versioning_from_settings
from mlops_pipeline.resources.mlflow_tracking import mlflow_tracking_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.team_store import dataset_key, team_store
from mlops_pipeline.training.dataset import build_training_dataset

SESSION = date(2025, 6, 30)
SESSIONS = nyse_sessions(date(2025, 6, 2), date(2025, 7, 1))


def _prepare(settings, team):
    """Checked market data and green's training dataset of AAPL, stored for ``SESSION`` only."""
    features = put_market_data(settings, "AAPL", SESSION)
    store = object_store_from_settings(settings)
    ludwig = load_ludwig_config(settings.ludwig_configs_path / team.model.ludwig_config)
    dataset = build_training_dataset(features, ludwig, team.model.train_window_days)
    team_store(store, "green").put_parquet(
        dataset_key("AAPL", SESSION),
        dataset,
        {"ludwig_config": team.model.ludwig_config, "data_version": "v1"},
    )
    return store, features


def _model_failure(settings, team, session: date = SESSION) -> str:
    result = dg.materialize(
        build_training_assets(team, settings, SESSIONS),
        selection=dg.AssetSelection.assets(dg.AssetKey(["green", "model"])),
        partition_key=session_ticker_key(session, "AAPL"),
        resources={
            "object_store": object_store_from_settings(settings),
            "mlflow_tracking": mlflow_tracking_from_settings(settings),
            "dvc_versioning": dvc_versioning_from_settings(settings),
        },
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    return failure.step_failure_data.error.message


def test_market_data_that_failed_its_checks_is_not_trained_on(small_team) -> None:
    settings, team = small_team
    store, features = _prepare(settings, team)
    _, manifest = store.get_parquet_with_manifest(features_key("AAPL", SESSION))
    store.put_parquet(
        features_key("AAPL", SESSION), features, {**manifest, "failed_checks": ["point_in_time"]}
    )
    message = _model_failure(settings, team)
    assert "market data for AAPL failed checks ['point_in_time']: no training" in message
    assert not (settings.home_dir / "dvc").exists()


def test_a_session_without_its_own_dataset_is_not_trained_on_another_sessions(small_team) -> None:
    settings, team = small_team
    _prepare(settings, team)  # 2025-06-30 only: the next session must not fall back to it
    message = _model_failure(settings, team, date(2025, 7, 1))
    assert "no training dataset for green/AAPL on 2025-07-01: materialize training_dataset first" in message
    assert not (settings.home_dir / "dvc").exists()


def test_a_broken_ludwig_config_fails_the_team_naming_file_and_key(small_team) -> None:
    settings, team = small_team
    _prepare(settings, team)
    path = settings.ludwig_configs_path / team.model.ludwig_config
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["trainer"]["epochz"] = 3
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    message = _model_failure(settings, team)
    assert "team green: invalid Ludwig config" in message
    assert "ludwig_configs/return_mlp.yaml: trainer.epochz: unknown key" in message
