from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from mlops_pipeline.resources.object_store import (
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreError,
    S3ObjectStore,
)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(root=str(tmp_path / "objects"))
    endpoint = request.getfixturevalue("moto_endpoint")
    s3 = S3ObjectStore(bucket=f"test-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint)
    s3.client().create_bucket(Bucket=s3.bucket)
    return s3


def test_round_trip_and_overwrite(store: ObjectStore) -> None:
    store.put_bytes("a/b/c.bin", b"one")
    store.put_bytes("a/b/c.bin", b"two")
    assert store.get_bytes("a/b/c.bin") == b"two"
    assert store.exists("a/b/c.bin")
    assert not store.exists("a/b/missing.bin")
    store.delete("a/b/c.bin")
    assert not store.exists("a/b/c.bin")


def test_missing_key_raises_named_error(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match=r"nope/x\.parquet"):
        store.get_bytes("nope/x.parquet")


def test_parquet_round_trip(store: ObjectStore) -> None:
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-01-02", "2024-01-03"]), "close": [1.5, 2.5]})
    store.put_parquet("market/raw/AAPL.parquet", frame)
    pd.testing.assert_frame_equal(store.get_parquet("market/raw/AAPL.parquet"), frame)


def test_listing_pages_through_many_keys(store: ObjectStore) -> None:
    for index in range(1005 if isinstance(store, S3ObjectStore) else 20):
        store.put_bytes(f"many/{index:05d}.txt", b"x")
    store.put_bytes("other/file.txt", b"y")
    keys = store.list_keys("many")
    assert len(keys) == (1005 if isinstance(store, S3ObjectStore) else 20)
    assert keys[0] == "many/00000.txt"
    assert "other/file.txt" not in keys


def test_scoped_store_cannot_escape_its_prefix(store: ObjectStore) -> None:
    red = store.scoped("teams/red")
    red.put_text("datasets/AAPL.json", "{}")
    assert store.get_text("teams/red/datasets/AAPL.json") == "{}"
    assert red.list_keys() == ["datasets/AAPL.json"]
    for bad in ("../blue/datasets/AAPL.json", "/teams/blue/x", "a/./b", ""):
        with pytest.raises(ObjectStoreError, match="invalid object key"):
            red.put_text(bad, "x")
    assert not store.exists("teams/blue/datasets/AAPL.json")


def test_local_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    store.put_bytes("k.bin", b"original")

    def failing_replace(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("mlops_pipeline.resources.object_store.os.replace", failing_replace)
    with pytest.raises(ObjectStoreError, match=r"object store \(.*\): put k.bin failed: disk full"):
        store.put_bytes("k.bin", b"new contents")
    monkeypatch.undo()
    assert store.get_bytes("k.bin") == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["k.bin"]  # no temp file left behind


@pytest.mark.integration
def test_s3_unreachable_endpoint_fails_with_a_clear_error() -> None:
    store = S3ObjectStore(
        bucket="unreachable", endpoint_url="http://127.0.0.1:9", connect_timeout_s=0.5, max_attempts=1
    )
    with pytest.raises(
        ObjectStoreError, match=r"object store \(S3 at http://127.0.0.1:9\): put s3://unreachable/k failed"
    ):
        store.put_bytes("k", b"x")


def test_parquet_manifest_travels_with_the_data(store: ObjectStore) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    store.put_parquet("t.parquet", frame, manifest={"adjusted": True, "as_of": "2024-01-02"})
    loaded, manifest = store.get_parquet_with_manifest("t.parquet")
    pd.testing.assert_frame_equal(loaded, frame)
    assert manifest == {"adjusted": True, "as_of": "2024-01-02"}
    store.put_parquet("plain.parquet", frame)
    assert store.get_parquet_with_manifest("plain.parquet")[1] == {}
