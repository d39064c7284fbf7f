"""Session fixtures: tiny trained Ludwig models, registered in a SQLite MLflow, and their bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
from _serving_models import (
    DIRECTION_CONFIG,
    RETURN_CONFIG,
    Registry,
    TrainedModels,
    feature_frame,
    log_ludwig_run,
    set_champion,
    train_model,
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    root = tmp_path_factory.mktemp("ludwig")
    data = feature_frame(240, seed=1)
    return TrainedModels(
        return_dir=train_model(RETURN_CONFIG, data, root / "return"),
        direction_dir=train_model(DIRECTION_CONFIG, data, root / "direction"),
    )


@pytest.fixture(scope="session")
def registry(trained: TrainedModels, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    run_ids = {
        "red-AAPL": log_ludwig_run(tracking_uri, str(root / "artifacts"), "red", "AAPL", trained.return_dir),
        "red-MSFT": log_ludwig_run(
            tracking_uri, str(root / "artifacts"), "red", "MSFT", trained.direction_dir
        ),
    }
    for name, run_id in run_ids.items():
        set_champion(tracking_uri, name, run_id)
    return Registry(tracking_uri, run_ids)


@pytest.fixture(scope="session")
def bundles(trained: TrainedModels, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from mlops_pipeline.serving.bundle import export_bundle

    root = tmp_path_factory.mktemp("bundles")
    return {
        "return": export_bundle(trained.return_dir, root / "return"),
        "direction": export_bundle(trained.direction_dir, root / "direction"),
    }
