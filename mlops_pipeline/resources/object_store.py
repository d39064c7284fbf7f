"""Object store: a local folder (embedded default) or any S3 endpoint (MinIO, AWS, ...).

Keys are ``/``-separated relative paths. Writes are atomic: the local store writes a temporary
file and renames it; S3 PUTs are atomic per object. A store can be narrowed to a prefix with
:meth:`ObjectStore.scoped`, after which every key is relative to that prefix and a key that
escapes it is refused, so one team's code cannot write into another team's objects.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_pipeline.objects import ObjectNotFoundError, ObjectStoreError, normalize_key

if TYPE_CHECKING:
    import pandas as pd

    from mlops_pipeline.config.settings import PlatformSettings

_MANIFEST_FIELD = b"mlops.manifest"
T = TypeVar("T")


class ObjectStore(dg.ConfigurableResource):
    """The :class:`~mlops_pipeline.objects.Objects` protocol as a Dagster resource; use
    :class:`LocalObjectStore` or :class:`S3ObjectStore`."""

    prefix: str = Field(default="", description="Every key is stored under this prefix")

    # -- backend primitives (keys here are full keys, prefix already applied) -----------------
    def _put(self, full_key: str, data: bytes) -> None:
        raise NotImplementedError

    def _get(self, full_key: str) -> bytes:
        raise NotImplementedError

    def _exists(self, full_key: str) -> bool:
        raise NotImplementedError

    def _delete(self, full_key: str) -> None:
        raise NotImplementedError

    def _list(self, full_prefix: str) -> Iterator[str]:
        raise NotImplementedError

    def uri(self, key: str) -> str:
        """A URI a human (or another tool) can use to find the object."""
        raise NotImplementedError

    def browser_url(self, key: str) -> str | None:
        """A link a browser can open (a presigned URL on S3); ``None`` where there is none."""
        return None

    # -- public API ---------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        key = normalize_key(key)
        return f"{self.prefix.rstrip('/')}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` atomically (replacing any previous object); return its URI."""
        self._put(self._full(key), data)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        return self._get(self._full(key))

    def exists(self, key: str) -> bool:
        return self._exists(self._full(key))

    def delete(self, key: str) -> None:
        self._delete(self._full(key))

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (relative to this store), sorted; pages through large listings."""
        base = self.prefix.rstrip("/") + "/" if self.prefix else ""
        wanted = normalize_key(prefix) if prefix else ""
        return sorted(key[len(base) :] for key in self._list(base + wanted))

    def put_text(self, key: str, text: str) -> str:
        return self.put_bytes(key, text.encode("utf-8"))

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode("utf-8")

    def put_parquet(self, key: str, frame: pd.DataFrame, manifest: dict[str, Any] | None = None) -> str:
        """Store ``frame`` as parquet; ``manifest`` (JSON-able) travels inside the same object, so
        data and its description are replaced together or not at all."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if manifest is not None:
            metadata = dict(table.schema.metadata or {})
            metadata[_MANIFEST_FIELD] = json.dumps(manifest, sort_keys=True, default=str).encode()
            table = table.replace_schema_metadata(metadata)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return self.put_bytes(key, buffer.getvalue())

    def get_parquet(self, key: str) -> pd.DataFrame:
        return self.get_parquet_with_manifest(key)[0]

    def get_parquet_with_manifest(self, key: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The frame stored under ``key`` and the manifest stored with it (``{}`` if none)."""
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(self.get_bytes(key)))
        raw = (table.schema.metadata or {}).get(_MANIFEST_FIELD)
        return table.to_pandas(), (json.loads(raw) if raw else {})

    def scoped(self, prefix: str) -> ObjectStore:
        """The same store narrowed to ``prefix``; keys outside it cannot be reached from the result."""
        inner = normalize_key(prefix.strip("/"))
        combined = f"{self.prefix.rstrip('/')}/{inner}" if self.prefix else inner
        return self.model_copy(update={"prefix": combined})


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root`` (the embedded default: ``.mlops/objects``)."""

    root: str = Field(description="Folder that holds the objects")

    def _path(self, full_key: str) -> Path:
        return Path(self.root) / full_key

    def _put(self, full_key: str, data: bytes) -> None:
        target = self._path(full_key)
        tmp: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):  # a full disk, a read-only folder: one line, nothing half-written
                raise ObjectStoreError(
                    f"object store ({self.root}): put {full_key} failed: {exc.strerror or exc}"
                ) from None
            raise

    def _get(self, full_key: str) -> bytes:
        try:
            return self._path(full_key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(f"object {full_key!r} not found in {self.root}") from exc

    def _exists(self, full_key: str) -> bool:
        return self._path(full_key).is_file()

    def _delete(self, full_key: str) -> None:
        self._path(full_key).unlink(missing_ok=True)

    def _list(self, full_prefix: str) -> Iterator[str]:
        root = Path(self.root)
        if not root.is_dir():
            return
        for path in root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(root).as_posix()
                if key.startswith(full_prefix):
                    yield key

    def uri(self, key: str) -> str:
        return self._path(self._full(key)).resolve().as_uri()


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket (MinIO in the compose stack). Credentials come from the standard
    AWS environment variables / profile chain, never from this resource's config."""

    bucket: str = Field(min_length=3)
    endpoint_url: str | None = Field(default=None, description="e.g. http://minio:9000; None = AWS")
    region: str = "us-east-1"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_attempts: int = 5
    public_endpoint_url: str | None = Field(
        default=None,
        description="The endpoint as browsers reach it, for presigned links (default endpoint_url)",
    )
    link_expiry_hours: int = Field(default=168, ge=1, le=168)

    _client: object | None = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=self.connect_timeout_s,
                read_timeout=self.read_timeout_s,
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"},
            )
            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
            )
        return self._client

    def _where(self) -> str:
        return self.endpoint_url or "AWS"

    def _put(self, full_key: str, data: bytes) -> None:
        self._call(
            "put", full_key, lambda: self.client().put_object(Bucket=self.bucket, Key=full_key, Body=data)
        )

    def _get(self, full_key: str) -> bytes:
        def read() -> bytes:
            return self.client().get_object(Bucket=self.bucket, Key=full_key)["Body"].read()

        return self._call("get", full_key, read)

    def _exists(self, full_key: str) -> bool:
        try:
            self._call("head", full_key, lambda: self.client().head_object(Bucket=self.bucket, Key=full_key))
        except ObjectNotFoundError:
            return False
        return True

    def _delete(self, full_key: str) -> None:
        self._call("delete", full_key, lambda: self.client().delete_object(Bucket=self.bucket, Key=full_key))

    def _list(self, full_prefix: str) -> Iterator[str]:
        def every_key() -> list[str]:
            paginator = self.client().get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=full_prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]

        yield from self._call("list", f"{full_prefix}*", every_key)

    def _call(self, verb: str, full_key: str, action: Callable[[], T]) -> T:
        """Run one S3 call (botocore retries it within its own bounds); a missing key raises
        :class:`ObjectNotFoundError`, any other failure one line naming the store and endpoint."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFoundError(f"object {full_key!r} not found in s3://{self.bucket}") from None
            cause = str(exc)
        except BotoCoreError as exc:
            cause = str(exc)
        raise ObjectStoreError(
            f"object store (S3 at {self._where()}): {verb} s3://{self.bucket}/{full_key} failed: {cause}"
        ) from None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def browser_url(self, key: str) -> str | None:
        """A presigned GET link, signed locally with the environment's AWS credentials; ``None``
        without them (e.g. credentials from an instance role)."""
        from mlops_pipeline.s3.links import presigned_get_url
        from mlops_pipeline.s3.minio_client import Endpoint, S3SetupError

        endpoint = Endpoint(
            self.public_endpoint_url or self.endpoint_url, self.region, "MLOPS_S3_PUBLIC_ENDPOINT_URL"
        )
        try:
            return presigned_get_url(
                endpoint, self.bucket, self._full(key), timedelta(hours=self.link_expiry_hours)
            )
        except S3SetupError:
            return None


def object_store_from_settings(settings: PlatformSettings) -> ObjectStore:
    """The local folder store (embedded default) or the S3 store, as the settings say."""
    if settings.storage == "s3":
        return S3ObjectStore(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            public_endpoint_url=settings.s3_public_endpoint_url,
            link_expiry_hours=settings.s3_link_expiry_hours,
        )
    return LocalObjectStore(root=str(settings.storage_root_path))
