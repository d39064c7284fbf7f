"""Tiny Ludwig models for the serving tests, and MLflow registration as the training contract says."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

NUMBER_INPUTS = ["log_return_1", "rsi_14", "volatility_20"]
WINDOW_INPUT = "return_window_10"
RETURN_CONFIG = {
    "model_type": "ecd",
    "input_features": [
        *({"name": name, "type": "number"} for name in NUMBER_INPUTS),
        {"name": WINDOW_INPUT, "type": "timeseries", "encoder": {"type": "stacked_cnn", "output_size": 8}},
    ],
    "output_features": [
        {"name": "target_next_return", "type": "number", "preprocessing": {"normalization": "zscore"}}
    ],
    "combiner": {"type": "concat", "output_size": 16, "num_fc_layers": 1},
    "trainer": {"epochs": 2, "batch_size": 64},
}
DIRECTION_CONFIG = {
    "model_type": "ecd",
    "input_features": [{"name": name, "type": "number"} for name in NUMBER_INPUTS],
    "output_features": [{"name": "target_next_direction", "type": "binary"}],
    "combiner": {"type": "concat", "output_size": 8},
    "trainer": {"epochs": 2, "batch_size": 64},
}


ROW_FEATURES = {
    "log_return_1": "0.004",
    "rsi_14": "55.5",
    "volatility_20": "0.012",
    WINDOW_INPUT: "0.001 -0.002 0.003 0.0 0.001 0.002 -0.001 0.0 0.004 0.001",
}


def feature_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "log_return_1": rng.normal(0, 0.01, rows),
            "rsi_14": rng.uniform(20, 80, rows),
            "volatility_20": rng.uniform(0.005, 0.03, rows),
        }
    )
    frame[WINDOW_INPUT] = [" ".join(f"{value:.6f}" for value in rng.normal(0, 0.01, 10)) for _ in range(rows)]
    frame["target_next_return"] = 0.3 * frame["log_return_1"] + rng.normal(0, 0.005, rows)
    frame["target_next_direction"] = (frame["target_next_return"] > 0).astype(int)
    return frame


@dataclass(frozen=True)
class TrainedModels:
    return_dir: Path
    direction_dir: Path


def cached_model(config: dict, data: pd.DataFrame, cache_dir: Path) -> Path:
    """The model of ``config`` trained on ``data``, trained once: every pytest-xdist worker and every
    later test run with the same config, data and Ludwig version reuses the saved model."""
    from filelock import FileLock

    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    digest.update(version("ludwig").encode())
    key = digest.hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / key
    with FileLock(str(cache_dir / f"{key}.lock")):
        if not (target / "model").is_dir():
            partial = cache_dir / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            train_model(config, data, partial)
            partial.rename(target)  # complete models only: an interrupted training is retrained
    return target / "model"


def train_model(config: dict, data: pd.DataFrame, out: Path) -> Path:
    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel

    model = LudwigModel(config, logging_level=logging.ERROR, backend="local")
    model.train(
        dataset=data,
        output_directory=str(out / "results"),
        skip_save_processed_input=True,
        skip_save_log=True,
        skip_save_progress=True,
        random_seed=7,
    )
    model.save(str(out / "model"))
    return out / "model"


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    run_ids: dict[str, str]  # registered name -> run id of its version 1


def log_ludwig_run(
    tracking_uri: str, artifact_root: str | None, team: str, ticker: str, model_dir: Path
) -> str:
    """One training run as the training contract describes it; registers ``<team>-<ticker>``."""
    import mlflow

    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel
    from ludwig.contribs.mlflow.model import log_model

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(team)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow.create_experiment(
            team, artifact_location=f"{artifact_root}/{team}" if artifact_root else None
        )
    )
    name = f"{team}-{ticker}"
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({"team": team, "ticker": ticker, "data_version": "test", "config_hash": "test"})
        mlflow.log_params({"data.first_date": "2024-01-02", "data.last_date": "2024-12-31"})
        log_model(
            LudwigModel.load(str(model_dir), backend="local"),
            artifact_path="model",
            registered_model_name=name,
        )
    return run.info.run_id


def set_champion(tracking_uri: str, name: str, run_id: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    version = next(v for v in client.search_model_versions(f"name='{name}'") if v.run_id == run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)
