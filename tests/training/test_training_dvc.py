from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from _net import free_port
from _training_data import folder_bytes

from mlops_pipeline.training.versioning import DvcStore, VersioningError


def _artifacts(root: Path, weights: bytes) -> tuple[Path, Path]:
    model = root / "model" / "final"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(weights)
    (root / "dataset.parquet").write_bytes(b"rows" * 500)
    return root / "dataset.parquet", root / "model"


def test_local_remote_round_trip_stores_identical_content_once(tmp_path: Path) -> None:
    dataset, model = _artifacts(tmp_path / "src", b"w" * 1000)
    store = DvcStore(tmp_path / "dvc", str(tmp_path / "remote"))
    first = store.version("red", "AAPL", dataset, model)
    size = folder_bytes(store.remote_url)
    assert first.pushed_files == 3  # dataset, model manifest, weights
    again = store.version("red", "AAPL", dataset, model)
    assert again.pushed_files == 0 and folder_bytes(store.remote_url) == size
    assert again.pointers == first.pointers
    assert first.pointers.model_md5.endswith(".dir")
    assert not (tmp_path / "dvc" / "workspaces" / "red" / "AAPL" / ".git").exists()

    fresh = DvcStore(tmp_path / "elsewhere", str(tmp_path / "remote"))  # empty cache: reads the remote
    pulled_dataset, pulled_model = fresh.pull(first.pointers, tmp_path / "restore")
    assert pulled_dataset.read_bytes() == dataset.read_bytes()
    assert (pulled_model / "final" / "weights.bin").read_bytes() == b"w" * 1000


def test_s3_remote_round_trip_on_moto(tmp_path: Path, moto_endpoint: str) -> None:
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket="dvc-training"
    )
    dataset, model = _artifacts(tmp_path / "src", b"x" * 2000)
    remote = "s3://dvc-training/store"
    store = DvcStore(tmp_path / "dvc", remote, moto_endpoint)
    result = store.version("blue", "MSFT", dataset, model)
    assert result.pushed_files == 3
    keys = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket="dvc-training")["Contents"]
    md5 = result.pointers.dataset_md5
    assert f"store/files/md5/{md5[:2]}/{md5[2:]}" in {item["Key"] for item in keys}
    assert store.version("blue", "MSFT", dataset, model).pushed_files == 0

    fresh = DvcStore(tmp_path / "other", remote, moto_endpoint)
    pulled_dataset, pulled_model = fresh.pull(result.pointers, tmp_path / "restore")
    assert pulled_dataset.read_bytes() == dataset.read_bytes()
    assert (pulled_model / "final" / "weights.bin").read_bytes() == b"x" * 2000


@pytest.mark.integration
def test_unreachable_s3_remote_fails_after_bounded_retries(tmp_path: Path) -> None:
    dataset, model = _artifacts(tmp_path / "src", b"y")
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = DvcStore(tmp_path / "dvc", "s3://nowhere/store", endpoint, timeout_s=2, attempts=2, backoff_s=0.1)
    with pytest.raises(VersioningError, match=r"dvc push to s3://nowhere/store failed after 2 attempt"):
        store.version("red", "AAPL", dataset, model)
