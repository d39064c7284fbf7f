"""DVC versioning of training datasets and models, pushed to a folder or an S3 remote."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.training.versioning import DvcStore


class DvcVersioningResource(dg.ConfigurableResource):
    """DVC workspaces and cache under ``root`` (never the project's own repository). S3
    credentials come from the standard AWS environment variables."""

    root: str = Field(description="Folder for the DVC workspaces and the shared cache")
    remote_url: str = Field(description="A folder, or s3://bucket/prefix")
    endpoint_url: str | None = Field(default=None, description="S3 endpoint for an s3:// remote")
    timeout_s: int = 30
    attempts: int = 3

    def store(self) -> DvcStore:
        return DvcStore(
            Path(self.root),
            self.remote_url,
            self.endpoint_url,
            timeout_s=self.timeout_s,
            attempts=self.attempts,
        )


def dvc_versioning_from_settings(settings: PlatformSettings) -> DvcVersioningResource:
    assert settings.dvc_remote_url is not None
    return DvcVersioningResource(
        root=str(settings.home_dir / "dvc"),
        remote_url=settings.dvc_remote_url,
        endpoint_url=settings.dvc_remote_endpoint_url,
    )
