"""``mlops storage init`` against an S3 server on loopback (moto): buckets created, configured and
checked, bad input refused before anything is created, and presigned links a browser can open."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from _net import free_port
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.resources.object_store import S3ObjectStore
from mlops_pipeline.s3.buckets import LIFECYCLE_RULE_ID, PROBE_KEY

pytestmark = pytest.mark.integration


def _names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"objects-{tag}", f"dvc-{tag}", f"mlflow-{tag}"


def _s3_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, objects: str, dvc: str, mlflow: str) -> None:
    monkeypatch.setenv("MLOPS_STORAGE", "s3")
    monkeypatch.setenv("MLOPS_S3_BUCKET", objects)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("MLOPS_DVC_REMOTE_URL", f"s3://{dvc}/store")
    monkeypatch.setenv("MLOPS_DVC_REMOTE_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS_DESTINATION", f"s3://{mlflow}/artifacts")


def _init(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["storage", "init", *args])


def test_storage_init_creates_configures_and_checks_every_bucket(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects, dvc, mlflow = _names()
    _s3_env(monkeypatch, moto_endpoint, objects, dvc, mlflow)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    # The DVC bucket exists already, with data and a retention rule of its owner's: both are kept.
    s3.create_bucket(Bucket=dvc)
    s3.put_object(Bucket=dvc, Key="store/files/md5/ab/cdef", Body=b"tracked data")
    theirs = {
        "ID": "their-rule",
        "Status": "Enabled",
        "Filter": {"Prefix": "tmp/"},
        "Expiration": {"Days": 3},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=dvc, LifecycleConfiguration={"Rules": [theirs]})

    result = _init("--json")
    assert result.exit_code == 0, result.output
    rows = {row["role"]: row for row in json.loads(result.output)}
    assert {role: (row["bucket"], row["created"]) for role, row in rows.items()} == {
        "objects": (objects, True),
        "dvc": (dvc, False),
        "mlflow": (mlflow, True),
    }
    assert all(row["checked"] and row["versioning"] == "enabled" for row in rows.values()), rows
    for bucket in (objects, dvc, mlflow):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        rules = {rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
        assert rules[LIFECYCLE_RULE_ID]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
        assert rules[LIFECYCLE_RULE_ID]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
        # the probe left nothing behind, not even a version or a delete marker
        versions = s3.list_object_versions(Bucket=bucket, Prefix=PROBE_KEY)
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    assert "their-rule" in {rule["ID"] for rule in s3.get_bucket_lifecycle_configuration(Bucket=dvc)["Rules"]}
    assert s3.get_object(Bucket=dvc, Key="store/files/md5/ab/cdef")["Body"].read() == b"tracked data"

    again = _init("--json")  # idempotent: everything existed, one rule of ours per bucket
    assert again.exit_code == 0, again.output
    assert not any(row["created"] for row in json.loads(again.output))
    ours = [
        r for r in s3.get_bucket_lifecycle_configuration(Bucket=dvc)["Rules"] if r["ID"] == LIFECYCLE_RULE_ID
    ]
    assert len(ours) == 1


def test_an_invalid_bucket_name_creates_no_bucket(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _objects, dvc, mlflow = _names()
    _s3_env(monkeypatch, moto_endpoint, "Team_Objects", dvc, mlflow)

    result = _init()
    assert result.exit_code == 2, result.output
    assert "MLOPS_S3_BUCKET: 'Team_Objects' is not a valid bucket name" in result.output
    existing = {b["Name"] for b in boto3.client("s3", endpoint_url=moto_endpoint).list_buckets()["Buckets"]}
    assert not {dvc, mlflow} & existing  # the valid names were not created either


def test_an_unreachable_endpoint_or_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    objects, dvc, mlflow = _names()
    endpoint = f"http://127.0.0.1:{free_port()}"
    _s3_env(monkeypatch, endpoint, objects, dvc, mlflow)

    unreachable = _init()
    assert unreachable.exit_code == 1
    assert f"S3 endpoint {endpoint} (MLOPS_S3_ENDPOINT_URL) unreachable" in unreachable.output

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    missing = _init()
    assert missing.exit_code == 1
    assert "S3 credentials missing: set AWS_SECRET_ACCESS_KEY" in missing.output


def test_presigned_links_open_without_credentials(moto_endpoint: str) -> None:
    bucket = _names()[0]
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    store = S3ObjectStore(
        bucket=bucket, endpoint_url=moto_endpoint, prefix="competition", link_expiry_hours=2
    )
    store.put_text("leaderboard.html", "<html><body>red leads</body></html>")

    link = store.browser_url("leaderboard.html")
    assert link is not None
    query = parse_qs(urlsplit(link).query)
    assert query["X-Amz-Expires"] == ["7200"] and query["X-Amz-Signature"]
    assert urlsplit(link).path == f"/{bucket}/competition/leaderboard.html"
    page = httpx.get(link, timeout=5)  # a browser: no credentials, only the link
    assert page.status_code == 200 and page.text == "<html><body>red leads</body></html>"

    public = store.model_copy(update={"public_endpoint_url": "https://s3.example.test"})
    assert (public.browser_url("leaderboard.html") or "").startswith(f"https://s3.example.test/{bucket}/")


def test_without_credentials_a_link_falls_back_to_the_object_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    store = S3ObjectStore(bucket="objects", endpoint_url="http://127.0.0.1:9")
    assert store.browser_url("leaderboard.html") is None
