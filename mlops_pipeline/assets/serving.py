"""Per-team serving: the model server deployment (one per team, per session) and the predictions per
session and ticker.

``<team>/serving`` for a session deploys the champions as they are after that session's promotion
gate and records the deployment under ``serving/deployments/<session>.json`` (plus the live one in
``serving/deployment.json``); that session's predictions call the endpoint recorded for it.
"""

import math
import os
from collections.abc import Iterator

import dagster as dg

from mlops_pipeline.assets.automation import PER_TEAM_STAGE, PER_TICKER_STAGE
from mlops_pipeline.assets.common import json_metadata
from mlops_pipeline.assets.market import FEATURES
from mlops_pipeline.assets.sessions import session_of, session_ticker_partitions, ticker_of
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.calendar import next_trading_day
from mlops_pipeline.market.features import FEATURE_COLUMNS
from mlops_pipeline.market.store import read_features
from mlops_pipeline.model_registry import registered_model_name
from mlops_pipeline.resources.object_store import ObjectNotFoundError, ObjectStore
from mlops_pipeline.team_store import LIVE_DEPLOYMENT_KEY, session_deployment_key, team_store

TOKEN_ENV = "MLOPS_SERVING_TOKEN"  # noqa: S105 - the variable's name, not a secret


def _json_value(value: object) -> object:
    """A feature value as JSON: numpy scalars as Python numbers, NaN as null (the server names it)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def build_serving_assets(
    team: TeamConfig, settings: PlatformSettings, sessions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    serving_key = dg.AssetKey([team.name, "serving"])
    tracking_uri = str(settings.mlflow_tracking_uri)
    work_dir = settings.home_dir / "serving" / team.name

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
        from mlops_pipeline.serving.deployment import DockerPlacement, NoChampionError, deploy_team
        from mlops_pipeline.serving.launch import Deployment, LaunchError

        session = session_of(context)
        store = team_store(object_store, team.name)
        previous = Deployment.stored(store, LIVE_DEPLOYMENT_KEY)
        try:
            deployment, changed, missing = deploy_team(
                team.name,
                list(team.tickers),
                mode=settings.serving_launcher,
                tracking_uri=tracking_uri,
                work_dir=work_dir,
                base_image=settings.serving_base_image,
                image_cache_dir=settings.home_dir / "serving" / "image",
                bundles_dir=settings.serving_bundles_path,
                placement=DockerPlacement(settings.serving_network, settings.serving_bundles_volume),
                previous=previous,
                publish=lambda new: store.put_text(LIVE_DEPLOYMENT_KEY, new.to_json()),
                progress=context.log.info,
            )
        except NoChampionError as exc:
            context.log.warning(f"nothing to serve yet: {exc}")
            return
        except LaunchError as exc:
            raise dg.Failure(f"team {team.name}: serving deployment failed: {exc}") from exc
        store.put_text(session_deployment_key(session), deployment.to_json())
        for ticker, reason in missing.items():
            context.log.warning(f"{ticker}: not served ({reason})")
        yield dg.MaterializeResult(
            metadata={
                "endpoint_url": dg.MetadataValue.url(deployment.endpoint_url),
                "launcher": deployment.launcher,
                "launcher_note": deployment.note,
                "container_id": deployment.instance_id if deployment.launcher == "docker" else "",
                "pid": deployment.instance_id if deployment.launcher == "process" else "",
                "image": deployment.image or "",
                "model_versions": json_metadata(
                    {name: spec["version"] for name, spec in deployment.models.items()}
                ),
                "models": json_metadata(deployment.models),
                "code_version": deployment.code_version,
                "changed": changed,
                "not_served": json_metadata(missing),
            },
        )

    @dg.asset(
        key=[team.name, "predictions"],
        deps=[serving_key, FEATURES],
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
        from mlops_pipeline.serving.client import ServingClientError, invoke
        from mlops_pipeline.serving.launch import Deployment
        from mlops_pipeline.serving.predictions import (
            PredictionError,
            prediction_record,
            store_prediction,
            stored_prediction,
        )

        ticker, as_of = ticker_of(context), session_of(context)
        store = team_store(object_store, team.name)
        try:
            deployment = Deployment.from_json(store.get_text(session_deployment_key(as_of)))
        except ObjectNotFoundError:
            context.log.warning(
                f"team {team.name} had no model server on {as_of} (no champion yet): no prediction"
            )
            return
        model_name = registered_model_name(team.name, ticker)
        if model_name not in deployment.models:
            context.log.warning(
                f"{model_name} has no champion (no model has passed the promotion gate yet): no prediction"
            )
            return
        done = stored_prediction(store, ticker, as_of)
        if done is not None:
            # A prediction is a record of what was known and traded on: a rerun keeps it.
            context.log.info(f"{model_name} {as_of}: already predicted by version {done['model_version']}")
            yield dg.MaterializeResult(
                metadata={
                    "as_of": str(as_of),
                    "kept_existing": True,
                    "model_version": str(done["model_version"]),
                    "predicted_direction": int(done["predicted_direction"]),
                }
            )
            return
        live = Deployment.stored(store, LIVE_DEPLOYMENT_KEY)
        served = (live.models.get(model_name) or {}).get("version") if live else None
        wanted = deployment.models[model_name].get("version")
        if str(served) != str(wanted):
            # The server only answers with what it serves now: a later model must never predict a
            # past session.
            raise dg.Failure(
                f"{model_name} on {as_of}: that session's deployment served version {wanted}, the model "
                f"server now serves {served or 'nothing'}; a later model never predicts a past session"
            )
        features, _ = read_features(object_store, ticker, as_of)
        if features is None:
            raise dg.Failure(f"no features for {ticker} on {as_of}: materialize market/features first")
        rows = features[features["date"].dt.date == as_of]
        if rows.empty:
            raise dg.Failure(
                f"no feature row for {ticker} on {as_of} (latest {features['date'].max().date()})"
            )
        row = rows.iloc[-1]
        record_in = {column: _json_value(row[column]) for column in FEATURE_COLUMNS if column in row.index}
        try:
            outputs, latency_ms = invoke(
                deployment.endpoint_url, model_name, [record_in], token=os.environ.get(TOKEN_ENV)
            )
            record = prediction_record(
                team=team.name,
                ticker=ticker,
                as_of=as_of,
                target_date=next_trading_day(as_of),
                output=outputs[0],
                close=float(row["close"]),
                model=deployment.models[model_name],
                model_name=model_name,
                latency_ms=latency_ms,
            )
        except (ServingClientError, PredictionError) as exc:
            raise dg.Failure(f"{model_name} on {as_of}: {exc}") from exc
        uri = store_prediction(store, ticker, record)
        yield dg.MaterializeResult(
            metadata={
                "as_of": str(as_of),
                "target_date": str(record["target_date"].date()),
                "predicted_return": record["predicted_return"],
                "predicted_close": record["predicted_close"],
                "prob_up": record["prob_up"],
                "predicted_direction": record["predicted_direction"],
                "model_name": model_name,
                "model_version": record["model_version"],
                "run_id": str(record["run_id"]),
                "latency_ms": record["latency_ms"],
                "uri": dg.MetadataValue.path(uri),
            },
        )

    return [serving, predictions]
