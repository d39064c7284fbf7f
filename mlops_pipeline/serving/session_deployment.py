"""A team's model server for one session: deploy the champions as they are after the session's
promotion gate and record the deployment.

:func:`deploy_session` holds every decision of the ``<team>/serving`` asset: nothing to serve yet
(no champion), or the deployment (new or unchanged) recorded under the session's key and as the
live one. A session before the newest deployed one is a past session: the live server serves later
models, which must never predict it, so its record is kept as it was (never replaced by today's
models) and nothing is deployed. It imports the launchers and the MLflow registry, so the asset
imports it inside its body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.objects import Objects, session_dates
from mlops_pipeline.outcomes import Skipped
from mlops_pipeline.serving.deployment import (
    DockerPlacement,
    NoChampionError,
    deploy_team,
    deployment_lock,
    stop_strays,
)
from mlops_pipeline.serving.launch import Deployment
from mlops_pipeline.team_store import (
    LIVE_DEPLOYMENT_KEY,
    SESSION_DEPLOYMENTS_PREFIX,
    session_deployment_key,
)


@dataclass(frozen=True)
class Deployed:
    deployment: Deployment
    changed: bool  # a new server, or the previous one kept
    not_served: dict[str, str]  # ticker -> why it is not served
    strays: list[str]  # model servers a run that died started, never recorded, now stopped
    kept_past: bool = False  # a past session's record, kept as it was: nothing was deployed


SessionDeployment = Skipped | Deployed  # Skipped: no champion yet, or a past session never served


def deploy_session(
    team: TeamConfig,
    session: date,
    store: Objects,
    settings: PlatformSettings,
    progress: Callable[[str], None],
) -> SessionDeployment:
    """Serve the team's champions for ``session``; ``store`` is the team's. Raises ``LaunchError``
    when no server could be started."""
    newest = max(session_dates(store, SESSION_DEPLOYMENTS_PREFIX, ".json"), default=None)
    if newest is not None and session < newest:
        kept = Deployment.stored(store, session_deployment_key(session))
        if kept is None:
            return Skipped(
                f"nothing deployed for {session.isoformat()}: it was never served, and the models "
                f"served since {newest.isoformat()} must not predict a past session"
            )
        return Deployed(kept, changed=False, not_served={}, strays=[], kept_past=True)
    work_dir = settings.home_dir / "serving" / team.name
    try:
        with deployment_lock(work_dir, team.name):
            deployment, changed, missing = deploy_team(
                team.name,
                list(team.tickers),
                mode=settings.serving_launcher,
                tracking_uri=str(settings.mlflow_tracking_uri),
                work_dir=work_dir,
                base_image=settings.serving_base_image,
                image_cache_dir=settings.home_dir / "serving" / "image",
                bundles_dir=settings.serving_bundles_path,
                placement=DockerPlacement(settings.serving_network, settings.serving_bundles_volume),
                previous=Deployment.stored(store, LIVE_DEPLOYMENT_KEY),
                publish=lambda new: store.put_text(LIVE_DEPLOYMENT_KEY, new.to_json()),
                progress=progress,
            )
            strays = stop_strays(work_dir, team.name, keep=deployment.instance_id)
    except NoChampionError as exc:
        return Skipped(f"nothing to serve yet: {exc}")
    store.put_text(session_deployment_key(session), deployment.to_json())
    return Deployed(deployment, changed, missing, strays)
