"""Per-team model training and promotion, partitioned by session x the team's tickers.

``<team>/model`` trains the team's Ludwig config on the ticker's training dataset (walk-forward
folds plus a final fit), versions data and models with DVC, logs the run to MLflow and moves the
``challenger`` alias; unchanged data and config skip all of it. ``<team>/champion`` runs the
promotion gate and moves ``champion`` only when the challenger passes. A new champion's inference
bundle is exported to its MLflow run there, in the ticker's own run beside the other tickers',
and the team's serving step only fetches it: when serving exported every new champion of the team
in turn, a retraining session of the 2-team x 3-ticker benchmark took 31-33 s, 24-26 s after.
"""

import math
from collections.abc import Iterator

import dagster as dg

from mlops_pipeline.assets.automation import PER_TICKER_STAGE
from mlops_pipeline.assets.common import WAITING
from mlops_pipeline.assets.market import stored_features
from mlops_pipeline.assets.sessions import session_of, session_ticker_partitions, ticker_of
from mlops_pipeline.assets.team import checked_market_inputs
from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.model_registry import TrackingError
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.resources.dvc_versioning import DvcVersioningResource
from mlops_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.serving.bundle import BundleError, ensure_version_bundle
from mlops_pipeline.team_store import dataset_key, team_store
from mlops_pipeline.training.champion import GateOutcome, PromotionError, run_gate
from mlops_pipeline.training.dataset import DatasetError
from mlops_pipeline.training.folds import FoldError
from mlops_pipeline.training.session_model import NotRetrained, Trained, session_model
from mlops_pipeline.training.versioning import VersioningError

# On every <team>/champion materialization: the version its gate left as champion, or NO_CHAMPION.
CHAMPION_AFTER_GATE = "champion"
NO_CHAMPION = "none"
# On a materialization that made a new champion: whether its inference bundle was exported or present.
INFERENCE_BUNDLE = "inference_bundle"


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
        store, key = team_store(object_store, team.name), dataset_key(ticker, as_of)
        if not store.exists(key):
            raise dg.Failure(
                f"no training dataset for {team.name}/{ticker} on {as_of}: materialize training_dataset first"
            )
        dataset, manifest = store.get_parquet_with_manifest(key)
        features = checked_market_inputs(object_store, ticker, as_of, "no training").features
        assert features is not None
        try:
            ludwig = load_ludwig_config(ludwig_path)
        except ConfigError as exc:
            raise dg.Failure(f"team {team.name}: invalid Ludwig config:\n{exc}") from exc
        try:
            step = session_model(
                team, ticker, as_of, dataset, manifest, features, ludwig, mlflow_tracking.tracker(),
                dvc_versioning.store, dict(context.run.tags), context.log.info,
            )  # fmt: skip
        except (TrackingError, VersioningError, DatasetError, FoldError) as exc:
            raise dg.Failure(f"team {team.name}, {ticker}: {exc}") from None  # the one line names the service
        if isinstance(step, Refused):
            raise dg.Failure(f"team {team.name}, {ticker}: {step.reason}")
        if isinstance(step, Skipped):
            context.log.warning(step.reason)
            yield dg.AssetObservation(
                asset_key=model_key, partition=context.partition_key, metadata={WAITING: step.reason}
            )
            return
        context.log.info(f"{ticker}: {_model_note(step)}")
        run_id = step.run_id if isinstance(step, NotRetrained) else step.outcome.run_id
        yield dg.MaterializeResult(
            metadata={**team_metadata, **_model_metadata(step)}, data_version=dg.DataVersion(run_id)
        )

    @dg.asset(
        key=[team.name, "champion"],
        deps=[model_key],
        partitions_def=partitions,
        automation_condition=PER_TICKER_STAGE,
        group_name=team.name,
        kinds={"mlflow"},
        tags={"team": team.name},
        metadata=team_metadata,
        output_required=False,
        description=f"Team {team.name}: the champion alias, moved only when the challenger passes the gate "
        "(a past session, older than the challenger's, keeps its record and moves nothing).",
    )
    def champion(
        context: dg.AssetExecutionContext, object_store: ObjectStore, mlflow_tracking: MlflowTrackingResource
    ) -> Iterator[dg.MaterializeResult]:
        ticker, session = ticker_of(context), session_of(context)
        features = stored_features(object_store, ticker, session)
        try:
            outcome = run_gate(mlflow_tracking.tracker(), team, ticker, session, features, ludwig_path)
        except (TrackingError, PromotionError, DatasetError, FoldError) as exc:
            raise dg.Failure(f"team {team.name}, {ticker}: {exc}") from None  # the one line names the service
        if isinstance(outcome, Skipped):
            context.log.warning(outcome.reason)
            return
        metadata = _gate_metadata(outcome)
        context.log.info(f"{outcome.model_name}: {metadata['reason']}")
        if outcome.champion_after is not None and outcome.champion_after != outcome.champion_before:
            try:
                exported = ensure_version_bundle(
                    mlflow_tracking.tracking_uri, outcome.model_name, outcome.champion_after
                )
            except (TrackingError, BundleError) as exc:
                raise dg.Failure(
                    f"team {team.name}, {ticker}: the inference bundle of champion "
                    f"{outcome.model_name} v{outcome.champion_after}: {exc}"
                ) from None
            metadata[INFERENCE_BUNDLE] = "exported" if exported else "present"
        yield dg.MaterializeResult(
            metadata=metadata, data_version=dg.DataVersion(str(outcome.champion_after or NO_CHAMPION))
        )

    return [model, champion]


def _gate_metadata(outcome: GateOutcome) -> dict[str, object]:
    """The promotion decision as metadata: the versions before and after, the scores and the rule."""
    decision = outcome.decision
    metadata: dict[str, object] = {
        "model_name": outcome.model_name,
        "challenger_version": outcome.challenger_version,
        "champion_before": outcome.champion_before or "none",
        CHAMPION_AFTER_GATE: outcome.champion_after or NO_CHAMPION,
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
    return metadata


def _model_note(step: NotRetrained | Trained) -> str:
    if isinstance(step, NotRetrained):
        return f"not retrained: {step.reason}"
    outcome = step.outcome
    if outcome.skipped:
        return f"data {outcome.data_version} and config {outcome.config_hash} unchanged"
    return f"trained run {outcome.run_id} (version {outcome.model_version}): {step.retrain_reason}"


def _model_metadata(step: NotRetrained | Trained) -> dict[str, object]:
    """What the session's model asset records: the kept model, or the training and its numbers."""
    if isinstance(step, NotRetrained):
        return {
            "retrained": False,
            "skip_reason": step.reason,
            "run_id": step.run_id,
            "model_version": step.model_version,
        }
    outcome = step.outcome
    metadata: dict[str, object] = {
        "retrained": not outcome.skipped,
        "retrain_reason": step.retrain_reason,
        "skip_reason": f"data {outcome.data_version} and config {outcome.config_hash} unchanged since run "
        f"{outcome.run_id}"
        if outcome.skipped
        else "none",
        "run_id": outcome.run_id,
        "run_url": dg.MetadataValue.url(outcome.run_url)
        if outcome.run_url.startswith("http")
        else outcome.run_url,
        "model_version": outcome.model_version,
        "model_version_number": int(outcome.model_version),
        "data_version": outcome.data_version,
        "config_hash": outcome.config_hash,
        "dvc_dataset_md5": outcome.dataset_md5,
        "dvc_model_md5": outcome.model_md5,
        **_numeric(outcome.metrics),
        **{f"seconds_{name.removesuffix('_s')}": round(value, 3) for name, value in outcome.timings.items()},
    }
    if not outcome.skipped:
        metadata["dvc_pushed_files"] = outcome.pushed_files
    return metadata


def _numeric(values: dict[str, float | None]) -> dict[str, float]:
    """Finite numbers only, as float metadata (the UI plots them across materializations)."""
    return {
        name: float(value) for name, value in values.items() if value is not None and not math.isnan(value)
    }
