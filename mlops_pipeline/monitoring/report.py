"""One monitoring report for a team x ticker x trading date: drift, performance, checks, and the
evidently snapshot that holds them (tagged with team, ticker, session and model version)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_pipeline.config.teams import MonitoringSpec, RetrainPolicy
from mlops_pipeline.monitoring.alignment import align_predictions
from mlops_pipeline.monitoring.checks import drift_check, performance_check
from mlops_pipeline.monitoring.evidently_report import (
    MIN_CURRENT_ROWS,
    MIN_REFERENCE_ROWS,
    SnapshotLabels,
    merge_snapshots,
    run_reports,
)
from mlops_pipeline.monitoring.performance import summarize_performance
from mlops_pipeline.monitoring.results import (
    Champion,
    CheckVerdict,
    DriftResult,
    ModelKind,
    PerformanceResult,
    not_enough_data,
)
from mlops_pipeline.monitoring.retrain import recommendation_text
from mlops_pipeline.monitoring.windows import (
    current_window,
    drift_columns,
    empty_columns,
    reference_window,
    window_sessions,
)

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

DIRECTION_TARGET = "target_next_direction"


@dataclass(frozen=True)
class ReportRequest:
    """Everything one report is computed from."""

    team: str
    ticker: str
    as_of: date
    features: pd.DataFrame
    predictions: pd.DataFrame | None
    champion: Champion | None
    input_features: list[str]
    output_feature: str
    monitoring: MonitoringSpec
    retrain: RetrainPolicy


@dataclass(frozen=True)
class MonitoringReport:
    team: str
    ticker: str
    as_of: date
    kind: ModelKind
    champion: Champion | None
    drift: DriftResult
    performance: PerformanceResult
    drift_verdict: CheckVerdict
    performance_verdict: CheckVerdict
    recommendation: str
    snapshot: Snapshot | None
    notes: list[str]
    reference: pd.DataFrame | None  # the champion's training window, as compared (date + columns)
    elapsed_s: float

    @property
    def failed_checks(self) -> list[str]:
        return [v.name for v in (self.drift_verdict, self.performance_verdict) if not v.passed]

    @property
    def retrain_recommended(self) -> bool:
        return bool(self.failed_checks)

    @property
    def status(self) -> str:
        """``ok``, ``drift``, ``performance``, ``drift+performance`` or ``not enough data``."""
        if self.failed_checks:
            return "+".join(self.failed_checks)
        if not (self.drift_verdict.evaluated or self.performance_verdict.evaluated):
            return "not enough data"
        return "ok"

    def numbers(self) -> dict[str, float]:
        """The numeric summary (what Dagster plots and MLflow records); absent numbers are left out."""
        perf = self.performance
        values: dict[str, float | None] = {
            "drift_share": self.drift.share,
            "drifted_features": float(len(self.drift.drifted_features)) if self.drift.evaluated else None,
            "mae": perf.mae,
            "rmse": perf.rmse,
            "mape": perf.mape,
            "directional_accuracy": perf.directional_accuracy,
            "naive_mae": perf.naive_mae,
            "naive_directional_accuracy": perf.naive_directional_accuracy,
            "n_predictions": float(perf.n_predictions),
            "missing_predictions": float(len(perf.missing_days)),
        }
        return {name: float(value) for name, value in values.items() if value is not None}

    def summary_record(self) -> dict[str, Any]:
        """One row of ``monitoring/summary.parquet`` plus the lists behind it."""
        perf = self.performance
        return {
            "date": self.as_of.isoformat(),
            "ticker": self.ticker,
            "drift_share": self.drift.share,
            "drifted_features": len(self.drift.drifted_features) if self.drift.evaluated else None,
            "mae": perf.mae,
            "rmse": perf.rmse,
            "mape": perf.mape,
            "directional_accuracy": perf.directional_accuracy,
            "naive_mae": perf.naive_mae,
            "n_predictions": perf.n_predictions,
            "status": self.status,
            "drifted_feature_names": self.drift.drifted_features,
            "missing_days": perf.missing_days,
            "champion_version": self.champion.version if self.champion else None,
        }

    def no_snapshot_reason(self) -> str:
        """Why no evidently report could run (the log line when there is no snapshot)."""
        reasons = [self.drift.note, self.performance.note, *self.notes]
        return "no evidently report: " + "; ".join(reason for reason in reasons if reason)


def _drift_note(
    champion: Champion | None, model: str, reference: pd.DataFrame | None, current: pd.DataFrame
) -> str | None:
    if champion is None:
        return f"no champion for model {model}: no reference window to compare with"
    if reference is None or len(reference) < MIN_REFERENCE_ROWS:
        return f"reference window: {not_enough_data(0 if reference is None else len(reference))}"
    if len(current) < MIN_CURRENT_ROWS:
        return f"current window: {not_enough_data(len(current))}"
    return None


def _span(frame: pd.DataFrame) -> tuple[str, str] | None:
    if frame.empty:
        return None
    dates = pd.to_datetime(frame["date"])
    return dates.min().strftime("%Y-%m-%d"), dates.max().strftime("%Y-%m-%d")


def build_report(request: ReportRequest) -> MonitoringReport:
    """Compute drift and performance, run evidently, decide the checks and build the snapshot."""
    started = time.perf_counter()
    kind: ModelKind = "direction" if request.output_feature == DIRECTION_TARGET else "regression"
    spec = request.monitoring
    monitored = drift_columns(request.input_features)
    empty = empty_columns(request.features, request.as_of, spec.window_days, monitored)
    columns = [column for column in monitored if column not in empty]
    current = current_window(request.features, request.as_of, spec.window_days, columns)
    champion = request.champion
    reference = (
        reference_window(
            request.features,
            date.fromisoformat(champion.first_date),
            date.fromisoformat(champion.last_date),
            columns,
        )
        if champion is not None
        else None
    )
    model = f"{request.team}-{request.ticker}"
    missing = (
        f"every value missing in the current window: {', '.join(empty)} (not tested for drift)"
        if empty
        else None
    )
    blocked = _drift_note(champion, model, reference, current) or (missing if not columns else None)

    sessions = window_sessions(request.features, request.as_of, spec.window_days)
    aligned = align_predictions(request.predictions, request.features, sessions)
    performance = summarize_performance(aligned, kind)
    output = run_reports(
        None if blocked else reference,
        current,
        columns,
        spec.drift_share_threshold,
        aligned.frame if performance.evaluated else None,
        kind,
    )
    drift = DriftResult(
        reference_rows=0 if reference is None else len(reference),
        current_rows=len(current),
        reference_window=None if reference is None else _span(reference),
        current_window=_span(current),
        features=output.features,
        note="; ".join(note for note in (blocked or missing, output.drift_note) if note) or None,
    )
    drift_verdict = drift_check(drift, spec.drift_share_threshold)
    performance_verdict = performance_check(
        performance, champion.evaluation_error if champion else None, spec.performance_tolerance
    )
    failed = [v.description for v in (drift_verdict, performance_verdict) if not v.passed]
    recommendation = recommendation_text(bool(failed), request.retrain.on_drift, failed)
    report = MonitoringReport(
        team=request.team,
        ticker=request.ticker,
        as_of=request.as_of,
        kind=kind,
        champion=champion,
        drift=drift,
        performance=performance,
        drift_verdict=drift_verdict,
        performance_verdict=performance_verdict,
        recommendation=recommendation,
        snapshot=None,
        notes=output.notes,
        reference=reference,
        elapsed_s=0.0,
    )
    snapshot = (
        merge_snapshots(output.snapshots, _labels(report, request.features)) if output.snapshots else None
    )
    return replace(report, snapshot=snapshot, elapsed_s=time.perf_counter() - started)


def _labels(report: MonitoringReport, features: pd.DataFrame) -> SnapshotLabels:
    """Tags and the facts a reader of the snapshot needs (evidently metadata is text)."""
    champion, drift, performance = report.champion, report.drift, report.performance
    facts = {
        "team": report.team,
        "ticker": report.ticker,
        "session": report.as_of.isoformat(),
        "status": report.status,
        "champion": f"{champion.model_name} v{champion.version} (run {champion.run_id})"
        if champion
        else "none",
        "model kind": report.kind,
        "reference window (champion training)": " to ".join(drift.reference_window or ("n/a",)),
        "current window": " to ".join(drift.current_window or ("n/a",)),
        "rows (reference / current)": f"{drift.reference_rows} / {drift.current_rows}",
        "features last date": pd.to_datetime(features["date"]).max().strftime("%Y-%m-%d"),
        "drift check": report.drift_verdict.description,
        "performance check": report.performance_verdict.description,
        "retraining": report.recommendation,
        "scored predictions": str(performance.n_predictions),
        "missing predictions": ", ".join(performance.missing_days) or "none",
        "awaiting the target close": ", ".join(performance.pending_days) or "none",
    }
    if performance.unmatched_days:
        facts["target date not a known session"] = ", ".join(performance.unmatched_days)
    for name, value in (("drift note", drift.note), ("performance note", performance.note)):
        if value:
            facts[name] = value
    if report.notes:
        facts["notes"] = "; ".join(report.notes)
    return SnapshotLabels(
        team=report.team,
        ticker=report.ticker,
        session=report.as_of,
        model_version=champion.version if champion else None,
        metadata=facts,
    )
