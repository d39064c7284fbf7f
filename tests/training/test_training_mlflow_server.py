"""Training against a real ``mlflow server`` on 127.0.0.1 with S3 (moto) artifacts and a DVC S3 remote."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import boto3
import pytest
from _mlflow_server import running_mlflow_server
from _net import free_port
from _training_data import put_market_data

from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.model_registry import HttpLimits, TrackingError
from mlops_pipeline.training.champion import run_gate
from mlops_pipeline.training.dataset import build_training_dataset, frame_fingerprint
from mlops_pipeline.training.pipeline import train_ticker
from mlops_pipeline.training.reproduce import reproduce_run
from mlops_pipeline.training.tracking import Tracker
from mlops_pipeline.training.versioning import DvcStore

pytestmark = pytest.mark.integration  # servers on 127.0.0.1


@pytest.fixture
def mlflow_server(tmp_path: Path, moto_endpoint: str) -> Iterator[str]:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="mlflow-artifacts")
    with running_mlflow_server(
        tmp_path / "mlflow-server",
        "s3://mlflow-artifacts/mlartifacts",
        {"MLFLOW_S3_ENDPOINT_URL": moto_endpoint},
    ) as url:
        yield url


def test_training_on_a_tracking_server_with_s3(
    small_team, mlflow_server: str, moto_endpoint: str, tmp_path: Path
):
    settings, team = small_team
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="dvc-models")
    features = put_market_data(settings, "AAPL", date(2025, 6, 30))
    path = settings.ludwig_configs_path / team.model.ludwig_config
    ludwig = load_ludwig_config(path)
    dataset = build_training_dataset(features.iloc[:-1], ludwig, team.model.train_window_days)
    tracker = Tracker(mlflow_server)
    dvc = DvcStore(tmp_path / "dvc", "s3://dvc-models/store", moto_endpoint)

    lines: list[str] = []
    version = frame_fingerprint(dataset)
    progress = lines.append
    outcome = train_ticker(team, "AAPL", dataset, version, features, ludwig, tracker, dvc, progress=progress)
    assert not outcome.skipped and outcome.model_version == "1"
    # One line per training (3 folds, then the final model), each with the time left at that pace.
    assert [line.split(" trained on ")[0] for line in lines] == [
        "AAPL: fold 1", "AAPL: fold 2", "AAPL: fold 3", "AAPL: final model"
    ]  # fmt: skip
    assert lines[-1].startswith(f"AAPL: final model trained on {len(dataset)} rows (4/4, ")
    assert lines[-1].endswith("about 0 s left)")
    assert outcome.run_url.startswith(f"{mlflow_server}/#/experiments/")
    keys = [
        item["Key"]
        for item in boto3.client("s3", endpoint_url=moto_endpoint)
        .list_objects_v2(Bucket="mlflow-artifacts")
        .get("Contents", [])
    ]
    assert any(key.endswith("/artifacts/model/MLmodel") for key in keys)
    assert any(key.endswith("/artifacts/evaluation/oos_predictions.parquet") for key in keys)

    gate = run_gate(tracker, team, "AAPL", date(2025, 6, 30), features, path)
    assert gate.decision is not None and gate.decision.promote and gate.champion_after == "1"
    assert tracker.aliases("green-AAPL") == {"challenger": "1", "champion": "1"}

    # Another machine: an empty DVC cache pulls the exact dataset and models from S3.
    elsewhere = DvcStore(tmp_path / "elsewhere", "s3://dvc-models/store", moto_endpoint)
    reproduction = reproduce_run(tracker, elsewhere, outcome.run_id)
    assert reproduction.identical, reproduction.mismatches
    assert reproduction.dataset_md5 == outcome.dataset_md5
    assert len(reproduction.recomputed) > 20


def test_unreachable_tracking_server_fails_without_training(small_team, tmp_path: Path):
    settings, team = small_team
    features = put_market_data(settings, "AAPL", date(2025, 6, 30))
    ludwig = load_ludwig_config(settings.ludwig_configs_path / team.model.ludwig_config)
    dataset = build_training_dataset(features, ludwig, team.model.train_window_days)
    url = f"http://127.0.0.1:{free_port()}"
    dvc = DvcStore(tmp_path / "dvc", str(tmp_path / "remote"))
    with pytest.raises(TrackingError, match=r"MLflow at http://127.0.0.1:\d+: experiment 'green' failed"):
        tracker = Tracker(url, limits=HttpLimits(max_retries=1, timeout_s=2))
        train_ticker(team, "AAPL", dataset, "v1", features, ludwig, tracker, dvc)
    assert not (tmp_path / "dvc").exists()  # nothing trained or versioned
