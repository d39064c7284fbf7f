"""Which buckets `mlops storage init` prepares, read from the settings alone."""

from __future__ import annotations

import pytest

from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.s3.buckets import planned_buckets
from mlops_pipeline.s3.minio_client import Endpoint, S3SetupError, minio_client

pytestmark = pytest.mark.unit


def test_the_embedded_defaults_need_no_bucket() -> None:
    assert planned_buckets(load_settings()) == []


def test_each_s3_store_names_its_bucket_endpoint_and_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_STORAGE", "s3")
    monkeypatch.setenv("MLOPS_S3_BUCKET", "objects")
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("MLOPS_DVC_REMOTE_URL", "s3://dvc/store")
    monkeypatch.setenv("MLOPS_DVC_REMOTE_ENDPOINT_URL", "http://other:9000")
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS_DESTINATION", "s3://mlflow/artifacts")

    plan = [
        (spec.role, spec.name, spec.setting, spec.endpoint.url) for spec in planned_buckets(load_settings())
    ]
    assert plan == [
        ("objects", "objects", "MLOPS_S3_BUCKET", "http://minio:9000"),
        ("dvc", "dvc", "MLOPS_DVC_REMOTE_URL", "http://other:9000"),
        ("mlflow", "mlflow", "MLOPS_MLFLOW_ARTIFACTS_DESTINATION", "http://minio:9000"),
    ]


def test_an_endpoint_that_is_no_url_is_named() -> None:
    with pytest.raises(S3SetupError, match=r"MLOPS_S3_ENDPOINT_URL='minio:9000' is not an S3 endpoint"):
        minio_client(Endpoint("minio:9000", "us-east-1", "MLOPS_S3_ENDPOINT_URL"), credentials=None)  # type: ignore[arg-type]
