"""Per-team serving: the model server deployment (one per team, per session) and the predictions per
session and ticker.

``<team>/serving`` for a session deploys the champions as they are after that session's promotion
gate and records the deployment under ``serving/deployments/<session>.json`` (plus the live one in
``serving/deployment.json``); that session's predictions call the endpoint recorded for it.
"""

import os
from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg

from mlops_pipeline.assets.automation import PER_TEAM_STAGE, PER_TICKER_STAGE
from mlops_pipeline.assets.common import json_metadata
from mlops_pipeline.assets.market import features_dep
from mlops_pipeline.assets.sessions import session_of, session_ticker_partitions, ticker_of
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.model_registry import registered_model_name
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import PREDICTED_VALUES, team_store

if TYPE_CHECKING:  # the launchers and the serving client are imported in the asset bodies only
    from mlops_pipeline.serving.session_deployment import Deployed
    from mlops_pipeline.serving.session_prediction import Kept, Predicted

TOKEN_ENV = "MLOPS_SERVING_TOKEN"  # noqa: S105 - the variable's name, not a secret


def build_serving_assets(
    team: TeamConfig,
    settings: PlatformSettings,
    sessions: dg.TimeWindowPartitionsDefinition,
    market_tickers: Sequence[str] | None = None,
) -> list[dg.AssetsDefinition]:
    serving_key = dg.AssetKey([team.name, "serving"])

    @dg.asset(
        key=serving_key,
        deps=[dg.AssetKey([team.name, "champion"])],
        partitions_def=sessions,
        automation_condition=PER_TEAM_STAGE,
        group_name=team.name,
        tags={"team": team.name},
        kinds={"docker"},
        output_required=False,
        description=f"Team {team.name}: one model server for all champion models (Docker or local process); "
        "nothing is materialized while no ticker has a champion.",
    )
    def serving(
        context: dg.AssetExecutionContext, object_store: ObjectStore
    ) -> Iterator[dg.MaterializeResult]:
        from mlops_pipeline.serving.launch import LaunchError
        from mlops_pipeline.serving.session_deployment import deploy_session

        store = team_store(object_store, team.name)
        try:
            step = deploy_session(team, session_of(context), store, settings, context.log.info)
        except LaunchError as exc:
            raise dg.Failure(f"team {team.name}: serving deployment failed: {exc}") from exc
        if isinstance(step, Skipped):
            context.log.warning(step.reason)
            return
        if step.kept_past:
            context.log.info("a past session: its deployment is kept as recorded, nothing deployed")
        for pid in step.strays:
            context.log.warning(f"stopped model server {pid}: started by a run that died, never recorded")
        for ticker, reason in step.not_served.items():
            context.log.warning(f"{ticker}: not served ({reason})")
        yield dg.MaterializeResult(metadata=_deployment_metadata(step))

    @dg.asset(
        key=[team.name, "predictions"],
        deps=[serving_key, features_dep(team.tickers, market_tickers)],
        partitions_def=session_ticker_partitions(sessions, team.tickers),
        automation_condition=PER_TICKER_STAGE,
        group_name=team.name,
        tags={"team": team.name},
        kinds={"parquet"},
        output_required=False,
        description=f"Team {team.name}: the champion's prediction for the next session, over REST "
        "(nothing is materialized for a ticker that has no champion yet).",
    )
    def predictions(
        context: dg.AssetExecutionContext, object_store: ObjectStore
    ) -> Iterator[dg.MaterializeResult]:
        from mlops_pipeline.serving.client import ServingClientError
        from mlops_pipeline.serving.predictions import PredictionError
        from mlops_pipeline.serving.session_prediction import Kept, predict_session

        ticker, as_of = ticker_of(context), session_of(context)
        store = team_store(object_store, team.name)
        try:
            step = predict_session(team.name, ticker, as_of, object_store, store, os.environ.get(TOKEN_ENV))
        except (ServingClientError, PredictionError) as exc:
            raise dg.Failure(f"{registered_model_name(team.name, ticker)} on {as_of}: {exc}") from exc
        if isinstance(step, Skipped):
            context.log.warning(step.reason)
            return
        if isinstance(step, Refused):
            raise dg.Failure(step.reason)
        if isinstance(step, Kept):
            # A prediction is a record of what was known and traded on: a rerun keeps it.
            version = step.record["model_version"]
            context.log.info(f"{step.model_name} {as_of}: already predicted by version {version}")
        yield dg.MaterializeResult(metadata=_prediction_metadata(step, as_of))

    return [serving, predictions]


def _prediction_metadata(step: "Kept | Predicted", as_of: date) -> dict[str, object]:
    """The session's prediction: the one kept, or the new one with its model, latency and object."""
    from mlops_pipeline.serving.session_prediction import Kept

    record = step.record
    if isinstance(step, Kept):
        return {
            "as_of": str(as_of),
            "kept_existing": True,
            "model_version": str(record["model_version"]),
            "predicted_direction": int(record["predicted_direction"]),
        }
    return {
        "as_of": str(as_of),
        "target_date": str(record["target_date"].date()),
        **{name: record[name] for name in PREDICTED_VALUES},
        "model_name": step.model_name,
        "model_version": record["model_version"],
        "run_id": str(record["run_id"]),
        "latency_ms": record["latency_ms"],
        "uri": dg.MetadataValue.path(step.uri),
    }


def _deployment_metadata(step: "Deployed") -> dict[str, object]:
    """Where the team's models are served, by what, and which versions."""
    deployment = step.deployment
    return {
        "endpoint_url": dg.MetadataValue.url(deployment.endpoint_url),
        "launcher": deployment.launcher,
        "launcher_note": deployment.note,
        "container_id": deployment.instance_id if deployment.launcher == "docker" else "",
        "pid": deployment.instance_id if deployment.launcher == "process" else "",
        "image": deployment.image or "",
        "model_versions": json_metadata({name: spec["version"] for name, spec in deployment.models.items()}),
        "models": json_metadata(deployment.models),
        "code_version": deployment.code_version,
        "changed": step.changed,
        "kept_past_session": step.kept_past,
        "not_served": json_metadata(step.not_served),
    }
