"""Build resources from the platform settings (one place decides local vs networked)."""

from __future__ import annotations

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore


def object_store_from_settings(settings: PlatformSettings) -> ObjectStore:
    if settings.storage == "s3":
        return S3ObjectStore(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    return LocalObjectStore(root=str(settings.storage_root_path))
