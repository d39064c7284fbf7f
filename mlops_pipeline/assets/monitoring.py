"""Per-team monitoring: an evidently snapshot per ticker and trading date in the team's evidently
project, drift and performance checks, and a sensor that turns failed checks into retraining runs
when the team opted in."""

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg

from mlops_pipeline.assets.automation import PER_TICKER_STAGE
from mlops_pipeline.assets.common import TEAM_TAG, json_metadata
from mlops_pipeline.assets.market import features_dep, stored_features
from mlops_pipeline.assets.sessions import (
    session_of,
    session_ticker_key,
    session_ticker_partitions,
    split_session_ticker,
    ticker_of,
)
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.monitoring.checks import DRIFT_CHECK, PERFORMANCE_CHECK
from mlops_pipeline.monitoring.retrain import RetrainCursor, cooldown_allows, retrain_run_key
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import team_store

if TYPE_CHECKING:  # evidently is imported in the asset body only
    from mlops_pipeline.monitoring.session import SessionMonitoring

MONITORING_REPORT = "monitoring_report"
TRIGGER_TAG = "mlops/trigger"
SENSOR_BATCH = 500


def monitoring_report_key(team: str) -> dg.AssetKey:
    return dg.AssetKey([team, MONITORING_REPORT])


def _severity(level: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if level == "ERROR" else dg.AssetCheckSeverity.WARN


def build_monitoring_assets(
    team: TeamConfig,
    settings: PlatformSettings,
    sessions: dg.TimeWindowPartitionsDefinition,
    upstream: Sequence[dg.AssetKey] = (),
    market_tickers: Sequence[str] | None = None,
) -> list[dg.AssetsDefinition]:
    """``[team, "monitoring_report"]`` per ticker, with the ``drift`` and ``performance`` checks.

    ``upstream`` adds dependencies (e.g. the team's predictions asset) to the shared features;
    ``market_tickers`` are the features' tickers (default: the team's).
    """
    key = monitoring_report_key(team.name)
    partitions = session_ticker_partitions(sessions, team.tickers)
    ludwig_path = settings.ludwig_configs_path / team.model.ludwig_config
    spec = team.monitoring

    @dg.asset(
        key=key,
        deps=[features_dep(team.tickers, market_tickers), *upstream],
        partitions_def=partitions,
        automation_condition=PER_TICKER_STAGE,
        group_name=team.name,
        kinds={"evidently"},
        tags={"team": team.name},
        metadata={"team": team.name, "config_hash": team.config_hash},
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=key,
                description=f"Share of drifted input features <= {spec.drift_share_threshold} "
                f"(severity {spec.drift_severity})",
            ),
            dg.AssetCheckSpec(
                PERFORMANCE_CHECK,
                asset=key,
                description="Champion beats the naive forecast and stays within "
                f"{spec.performance_tolerance}x its evaluation error",
            ),
        ],
        description=f"Team {team.name}: evidently drift and performance snapshot of the champion, per date, "
        "in the team's evidently project (dashboards in the evidently UI).",
    )
    def monitoring_report(
        context: dg.AssetExecutionContext, object_store: ObjectStore
    ) -> dg.MaterializeResult:
        from mlops_pipeline.config.errors import ConfigError
        from mlops_pipeline.monitoring.champion import ChampionError
        from mlops_pipeline.monitoring.session import monitor_session
        from mlops_pipeline.monitoring.windows import MonitoringInputError
        from mlops_pipeline.monitoring.workspace import WorkspaceError

        ticker, as_of = ticker_of(context), session_of(context)
        features = stored_features(object_store, ticker, as_of)
        store = team_store(object_store, team.name)
        try:
            done = monitor_session(team, ticker, as_of, features, store, ludwig_path, settings)
        except (ConfigError, ChampionError, MonitoringInputError, WorkspaceError) as exc:
            raise dg.Failure(f"team {team.name}, {ticker}: {exc}") from exc
        report = done.report
        context.log.info(
            f"{ticker} {as_of}: {report.status}; {done.published.message}; {report.recommendation}"
        )
        verdicts = {DRIFT_CHECK: report.drift_verdict, PERFORMANCE_CHECK: report.performance_verdict}
        severities = {DRIFT_CHECK: spec.drift_severity, PERFORMANCE_CHECK: "WARN"}
        return dg.MaterializeResult(
            metadata=_report_metadata(done, as_of),
            check_results=[
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name=name,
                    passed=verdict.passed,
                    severity=_severity(severities[name]),
                    description=verdict.description,
                    metadata={"evaluated": verdict.evaluated, "details": json_metadata(verdict.details)},
                )
                for name, verdict in verdicts.items()
            ],
        )

    return [monitoring_report]


def _report_metadata(done: "SessionMonitoring", as_of: date) -> dict[str, object]:
    """The report's numbers, status and notes, and where it was published and logged."""
    report, published = done.report, done.published
    links: dict[str, dg.MetadataValue] = {"dashboard": dg.MetadataValue.url(published.dashboard_url)}
    if published.snapshot_url:
        links["snapshot"] = dg.MetadataValue.url(published.snapshot_url)
    return {
        **report.numbers(),
        "drifted_features": len(report.drift.drifted_features),
        "n_predictions": report.performance.n_predictions,
        "missing_predictions": len(report.performance.missing_days),
        "as_of": as_of.isoformat(),
        "status": report.status,
        "retrain_recommended": report.retrain_recommended,
        "retrain_recommendation": report.recommendation,
        "drifted_feature_names": json_metadata(report.drift.drifted_features),
        "missing_days": json_metadata(report.performance.missing_days),
        "notes": json_metadata([note for note in (report.drift.note, report.performance.note) if note]),
        "champion": report.champion.model_name + " v" + report.champion.version
        if report.champion
        else "none",
        "mlflow": done.mlflow_logged,
        "report_seconds": round(report.elapsed_s, 3),
        "snapshot_bytes": published.snapshot_bytes,
        "snapshot_id": published.snapshot_id or "none",
        "evidently_project": published.project_id,
        "evidently": published.message,
        **links,
    }


def build_retrain_sensor(
    team: TeamConfig, retrain_job_name: str, minimum_interval_seconds: int = 300
) -> dg.SensorDefinition:
    """Requests ``retrain_job_name`` for a ticker whose report recommends retraining.

    Runs only with ``retrain.on_drift: true`` (then it starts RUNNING); otherwise it is STOPPED and,
    if started, only lists the recommendations. At most one request per ticker within
    ``retrain.cooldown_days`` of the last requested report date.
    """
    key = monitoring_report_key(team.name)
    policy = team.retrain

    @dg.sensor(
        name=f"{team.name}_retrain_on_monitoring",
        job_name=retrain_job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if policy.on_drift else dg.DefaultSensorStatus.STOPPED,
        description=f"Team {team.name}: retrain a ticker when its monitoring checks fail "
        f"(on_drift={policy.on_drift}, cooldown {policy.cooldown_days} days).",
    )
    def retrain_on_monitoring(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = RetrainCursor.parse(context.cursor)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor.after_storage_id),
            limit=SENSOR_BATCH,
            ascending=True,
        ).records
        requests: list[dg.RunRequest] = []
        held: list[str] = []
        for record in records:
            cursor.after_storage_id = record.storage_id
            materialization = record.asset_materialization
            if materialization is None or materialization.partition is None:
                continue
            metadata = materialization.metadata
            recommended = metadata.get("retrain_recommended")
            if recommended is None or not recommended.value:
                continue
            try:
                as_of, ticker = split_session_ticker(materialization.partition)
            except ValueError:  # a report from before sessions were partitions
                held.append(f"{materialization.partition} (not a session|ticker partition)")
                continue
            last = cursor.last_requested.get(ticker)
            if not policy.on_drift:
                held.append(f"{ticker} {as_of} (manual: retrain.on_drift is false)")
            elif not cooldown_allows(date.fromisoformat(last) if last else None, as_of, policy.cooldown_days):
                held.append(f"{ticker} {as_of} (cooldown: last request for {last})")
            else:
                cursor.last_requested[ticker] = as_of.isoformat()
                requests.append(
                    dg.RunRequest(
                        run_key=retrain_run_key(team.name, ticker, as_of),
                        partition_key=session_ticker_key(as_of, ticker),
                        tags={TEAM_TAG: team.name, TRIGGER_TAG: "monitoring"},
                    )
                )
        skip = None if requests else ("; ".join(held) or "no new report recommends retraining")
        return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor.dumps())

    return retrain_on_monitoring
