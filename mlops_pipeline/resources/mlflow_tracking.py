"""MLflow tracking and model registry: SQLite under the home (embedded) or a tracking server."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.training.tracking import Tracker


class MlflowTrackingResource(dg.ConfigurableResource):
    """Where runs and registered models live. Server credentials, if any, come from MLflow's own
    environment variables (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``), never from this config."""

    tracking_uri: str
    artifact_root: str | None = Field(
        default=None, description="Artifact location of new experiments (SQLite/file stores only)"
    )

    def tracker(self) -> Tracker:
        return Tracker(self.tracking_uri, self.artifact_root)


def mlflow_tracking_from_settings(settings: PlatformSettings) -> MlflowTrackingResource:
    assert settings.mlflow_tracking_uri is not None
    return MlflowTrackingResource(
        tracking_uri=settings.mlflow_tracking_uri, artifact_root=settings.mlflow_artifact_root
    )
