"""One ticker's monitoring of one session: build the report, publish it, log its numbers to MLflow.

:func:`monitor_session` is everything the ``<team>/monitoring_report`` asset does besides reading
the features and turning the result into metadata and check results. It imports evidently (through
the report and the workspace), so the asset imports this module inside its body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.monitoring.champion import ChampionRegistry
from mlops_pipeline.monitoring.publish import Published, publish_report
from mlops_pipeline.monitoring.report import MonitoringReport, ReportRequest, build_report
from mlops_pipeline.monitoring.windows import window_sessions
from mlops_pipeline.monitoring.workspace import workspace_from_settings
from mlops_pipeline.objects import Objects
from mlops_pipeline.serving.predictions import read_predictions


@dataclass(frozen=True)
class SessionMonitoring:
    report: MonitoringReport
    published: Published
    mlflow_logged: str  # what was logged onto the champion's run, or why nothing was


def monitor_session(
    team: TeamConfig,
    ticker: str,
    as_of: date,
    features: pd.DataFrame,
    store: Objects,
    ludwig_path: Path,
    settings: PlatformSettings,
) -> SessionMonitoring:
    """Report, publish and log the session; ``store`` is the team's. Raises ``ConfigError``,
    ``ChampionError``, ``MonitoringInputError`` and ``WorkspaceError`` with the reason."""
    spec = team.monitoring
    # only the predictions the report scores: those made in its window
    window = window_sessions(features, as_of, spec.window_days)
    predictions = read_predictions(store, ticker, since=window[0].date() if window else None)
    ludwig = load_ludwig_config(ludwig_path)
    registry = ChampionRegistry(str(settings.mlflow_tracking_uri))
    kind = "direction" if ludwig.output_features[0] == "target_next_direction" else "regression"
    report = build_report(
        ReportRequest(
            team=team.name,
            ticker=ticker,
            as_of=as_of,
            features=features,
            predictions=predictions,
            champion=registry.find(team.name, ticker, kind),
            input_features=ludwig.input_features,
            output_feature=ludwig.output_features[0],
            monitoring=spec,
            retrain=team.retrain,
        )
    )
    published = publish_report(workspace_from_settings(settings), store, report, list(team.tickers))
    mlflow_logged = "no champion"
    if report.champion is not None:
        logged = registry.log_metrics(report.champion.run_id, as_of, report.numbers())
        mlflow_logged = f"{len(logged)} metric(s) at step {as_of.strftime('%Y%m%d')}"
    return SessionMonitoring(report, published, mlflow_logged)
