"""Session fixtures: tiny trained Ludwig models, registered in a SQLite MLflow, and their bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
from _serving_models import (
    DIRECTION_CONFIG,
    RETURN_CONFIG,
    Registry,
    TrainedModels,
    cached_model,
    feature_frame,
    log_ludwig_run,
    set_champion,
)


@pytest.fixture(scope="session")
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    """Two tiny models, trained once for every worker (and kept in pytest's cache between runs)."""
    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("ludwig-models") if cache is not None else tmp_path_factory.getbasetemp().parent
    data = feature_frame(240, seed=1)
    return TrainedModels(
        return_dir=cached_model(RETURN_CONFIG, data, root),
        direction_dir=cached_model(DIRECTION_CONFIG, data, root),
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
