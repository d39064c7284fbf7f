"""Per-team model training and promotion, partitioned by session x the team's tickers.

``<team>/model`` trains the team's Ludwig config on the ticker's training dataset (walk-forward
folds plus a final fit), versions data and models with DVC, logs the run to MLflow and moves the
``challenger`` alias; unchanged data and config skip all of it. ``<team>/champion`` runs the
promotion gate and moves ``champion`` only when the challenger passes.
"""

import math
from collections.abc import Iterator

import dagster as dg

from mlops_pipeline.assets.automation import PER_TICKER_STAGE
from mlops_pipeline.assets.common import WAITING
from mlops_pipeline.assets.sessions import session_of, session_ticker_partitions, ticker_of
from mlops_pipeline.assets.team import checked_market_inputs
from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.store import read_features
from mlops_pipeline.model_registry import TrackingError
from mlops_pipeline.resources.dvc_versioning import DvcVersioningResource
from mlops_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import dataset_key, team_store
from mlops_pipeline.training.champion import PromotionError, run_gate
from mlops_pipeline.training.dataset import DatasetError, frame_fingerprint
from mlops_pipeline.training.folds import FoldError, history_shortfall
from mlops_pipeline.training.pipeline import train_ticker, training_config_hash
from mlops_pipeline.training.retrain_policy import (
    COVERED_UNTIL_TAG,
    FORCE,
    RETRAIN_TAG,
    covered_until,
    previous_training,
    retrain_decision,
)
from mlops_pipeline.training.versioning import VersioningError


def build_training_assets(
    team: TeamConfig, settings: PlatformSettings, sessions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    partitions = session_ticker_partitions(sessions, team.tickers)
    ludwig_path = settings.ludwig_configs_path / team.model.ludwig_config
    model_key = dg.AssetKey([team.name, "model"])
    team_metadata = {"team": team.name, "ludwig_config": team.model.ludwig_config}

    @dg.asset(
        key=model_key,
        deps=[dg.AssetKey([team.name, "training_dataset"])],
        partitions_def=partitions,
        automation_condition=PER_TICKER_STAGE,
        group_name=team.name,
        kinds={"ludwig", "mlflow", "dvc"},
        tags={"team": team.name},
        metadata=team_metadata,
        output_required=False,
        description=f"Team {team.name}: {team.model.ludwig_config} per ticker, tracked and versioned "
        "(nothing is materialized while the history is too short to evaluate a model).",
    )
    def model(
        context: dg.AssetExecutionContext,
        object_store: ObjectStore,
        mlflow_tracking: MlflowTrackingResource,
        dvc_versioning: DvcVersioningResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        ticker, as_of = ticker_of(context), session_of(context)
        store = team_store(object_store, team.name)
        key = dataset_key(ticker, as_of)
        if not store.exists(key):
            raise dg.Failure(
                f"no training dataset for {team.name}/{ticker} on {as_of}: materialize training_dataset first"
            )
        dataset, manifest = store.get_parquet_with_manifest(key)
        features = checked_market_inputs(object_store, ticker, as_of, "no training").features
        try:
            ludwig = load_ludwig_config(ludwig_path)
        except ConfigError as exc:
            raise dg.Failure(f"team {team.name}: invalid Ludwig config:\n{exc}") from exc
        if manifest.get("ludwig_config") != team.model.ludwig_config:
            raise dg.Failure(
                f"dataset {key} was built for {manifest.get('ludwig_config')!r}, the team now uses "
                f"{team.model.ludwig_config!r}: materialize training_dataset again"
            )
        data_version = str(manifest.get("data_version") or frame_fingerprint(dataset))
        shortfall = history_shortfall(len(dataset), team.evaluation, as_of)
        if shortfall is not None:
            reason = f"team {team.name}, {ticker}: {shortfall}"
            context.log.warning(reason)
            yield dg.AssetObservation(
                asset_key=model_key, partition=context.partition_key, metadata={WAITING: reason}
            )
            return
        tracker = mlflow_tracking.tracker()
        run_tags = dict(context.run.tags)
        try:
            latest = tracker.latest_trained_run(team.name, ticker)
            decision = retrain_decision(
                cron=team.retrain.cron,
                timezone=team.schedule.timezone,
                previous=previous_training(latest.data.tags, latest.data.params) if latest else None,
                config_hash=training_config_hash(team, ludwig),
                as_of=as_of,
                forced=run_tags.get(RETRAIN_TAG) == FORCE,
            )
            if not decision.due:
                assert latest is not None
                context.log.info(f"{ticker}: not retrained: {decision.reason}")
                yield dg.MaterializeResult(
                    metadata={
                        **team_metadata,
                        "retrained": False,
                        "skip_reason": decision.reason,
                        "run_id": latest.info.run_id,
                        "model_version": latest.data.tags.get("model_version", ""),
                    },
                    data_version=dg.DataVersion(latest.info.run_id),
                )
                return
            outcome = train_ticker(
                team,
                ticker,
                dataset,
                data_version,
                features,
                ludwig,
                tracker,
                dvc_versioning.store(),
                run_tags={COVERED_UNTIL_TAG: covered_until(as_of, run_tags).isoformat()},
                progress=context.log.info,
            )
        except (TrackingError, VersioningError, DatasetError, FoldError) as exc:
            raise dg.Failure(f"team {team.name}, {ticker}: {exc}") from exc
        if outcome.skipped:
            context.log.info(f"{ticker}: data {data_version} and config {outcome.config_hash} unchanged")
        metadata = {
            **team_metadata,
            "retrained": not outcome.skipped,
            "retrain_reason": decision.reason,
            "skip_reason": f"data {data_version} and config {outcome.config_hash} unchanged since run "
            f"{outcome.run_id}"
            if outcome.skipped
            else "none",
            "run_id": outcome.run_id,
            "run_url": dg.MetadataValue.url(outcome.run_url)
            if outcome.run_url.startswith("http")
            else outcome.run_url,
            "model_version": outcome.model_version,
            "model_version_number": int(outcome.model_version),
            "data_version": data_version,
            "config_hash": outcome.config_hash,
            "dvc_dataset_md5": outcome.dataset_md5,
            "dvc_model_md5": outcome.model_md5,
            **_numeric(outcome.metrics),
            **{
                f"seconds_{name.removesuffix('_s')}": round(value, 3)
                for name, value in outcome.timings.items()
            },
        }
        if not outcome.skipped:
            metadata["dvc_pushed_files"] = outcome.pushed_files
        yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(outcome.run_id))

    @dg.asset(
        key=[team.name, "champion"],
        deps=[model_key],
        partitions_def=partitions,
        automation_condition=PER_TICKER_STAGE,
        group_name=team.name,
        kinds={"mlflow"},
        tags={"team": team.name},
        metadata=team_metadata,
        description=f"Team {team.name}: the champion alias, moved only when the challenger passes the gate.",
    )
    def champion(
        context: dg.AssetExecutionContext, object_store: ObjectStore, mlflow_tracking: MlflowTrackingResource
    ) -> dg.MaterializeResult:
        ticker, session = ticker_of(context), session_of(context)
        features, _ = read_features(object_store, ticker, session)
        if features is None:
            raise dg.Failure(f"no features for {ticker} on {session}: materialize market/features first")
        try:
            outcome = run_gate(mlflow_tracking.tracker(), team, ticker, features, ludwig_path)
        except (TrackingError, PromotionError, DatasetError, FoldError) as exc:
            raise dg.Failure(f"team {team.name}, {ticker}: {exc}") from exc
        decision = outcome.decision
        metadata = {
            "model_name": outcome.model_name,
            "challenger_version": outcome.challenger_version,
            "champion_before": outcome.champion_before or "none",
            "champion": outcome.champion_after or "none",
            "promoted": bool(decision and decision.promote),
            "reason": decision.reason if decision else outcome.note,
            "champion_scores": outcome.note,
        }
        if decision is not None:
            metadata.update(
                {
                    "metric": decision.metric,
                    **_numeric(
                        {
                            "challenger_score": decision.challenger_score,
                            "champion_score": decision.champion_score,
                            "challenger_skill_vs_naive": decision.challenger_skill,
                            "required_skill_vs_naive": decision.required_skill,
                        }
                    ),
                }
            )
        context.log.info(f"{outcome.model_name}: {metadata['reason']}")
        return dg.MaterializeResult(
            metadata=metadata, data_version=dg.DataVersion(str(outcome.champion_after or "none"))
        )

    return [model, champion]


def _numeric(values: dict[str, float | None]) -> dict[str, float]:
    """Finite numbers only, as float metadata (the UI plots them across materializations)."""
    return {
        name: float(value) for name, value in values.items() if value is not None and not math.isnan(value)
    }
