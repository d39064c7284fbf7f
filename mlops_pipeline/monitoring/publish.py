"""Publishing a monitoring report into the team's evidently project, and exporting it again.

Order of writes, so that nothing is left half-written: the project (with its dashboard) exists
before anything refers to it; the champion's reference window is stored as a dataset once per
model version (a marker in the team store remembers it); the snapshot is stored whole; then the
date's record in the team store points at it; only then is a superseded snapshot of the same
session removed. A crash in between leaves at worst an extra snapshot, never a dangling record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from mlops_pipeline.monitoring.report import MonitoringReport
from mlops_pipeline.monitoring.storage import (
    read_summary_record,
    rebuild_summary,
    store_summary_record,
)
from mlops_pipeline.monitoring.workspace import MonitoringWorkspace
from mlops_pipeline.objects import Objects
from mlops_pipeline.team_store import reference_marker_key


class MonitoringExportError(RuntimeError):
    """No stored snapshot for the requested team, ticker and date; the message says why."""


@dataclass(frozen=True)
class Published:
    """Where a report went: its project and dashboard, its snapshot (if any) and its size."""

    project_id: str
    dashboard_url: str
    snapshot_id: str | None
    snapshot_url: str | None
    snapshot_bytes: int
    reference_dataset: str | None
    superseded: str | None
    message: str


def snapshot_size(report: MonitoringReport) -> int:
    """Bytes of the snapshot as stored (evidently's JSON)."""
    if report.snapshot is None:
        return 0
    from evidently.legacy.utils import NumpyEncoder

    return len(json.dumps(report.snapshot.to_snapshot_model().dict(), cls=NumpyEncoder).encode("utf-8"))


def _reference_dataset(
    workspace: MonitoringWorkspace, store: Objects, project: str, report: MonitoringReport
) -> str | None:
    champion, reference = report.champion, report.reference
    if champion is None or reference is None or reference.empty:
        return None
    marker = reference_marker_key(report.ticker, champion.version)
    if store.exists(marker):
        return str(json.loads(store.get_text(marker))["dataset_id"])
    name = f"reference {report.ticker} {champion.model_name} v{champion.version}"
    frame = reference.assign(date=reference["date"].astype("string"))
    dataset_id = workspace.ensure_dataset(
        project,
        name,
        frame,
        f"Training window of {champion.model_name} v{champion.version} (run {champion.run_id}): "
        f"{champion.first_date} to {champion.last_date}",
    )
    store.put_text(marker, json.dumps({"dataset_id": dataset_id, "name": name}, sort_keys=True))
    return dataset_id


def publish_report(
    workspace: MonitoringWorkspace, store: Objects, report: MonitoringReport, tickers: list[str]
) -> Published:
    """Store ``report`` in the team's project and record it for the date (see the module doc)."""
    previous = read_summary_record(store, report.ticker, report.as_of)
    project = workspace.ensure_project(report.team, tickers, report.kind)
    dataset = _reference_dataset(workspace, store, project, report)
    snapshot_id = workspace.add_snapshot(project, report.snapshot) if report.snapshot is not None else None
    url = workspace.snapshot_url(project, snapshot_id) if snapshot_id else None
    record = {
        **report.summary_record(),
        "project_id": project,
        "snapshot_id": snapshot_id,
        "snapshot_url": url,
    }
    store_summary_record(store, report.ticker, report.as_of, record)
    rebuild_summary(store)
    superseded = None
    if previous and previous.get("snapshot_id") and previous.get("project_id") == project:
        superseded = str(previous["snapshot_id"])
        workspace.delete_snapshot(project, superseded)
    message = f"snapshot {snapshot_id} in project {project}" if snapshot_id else report.no_snapshot_reason()
    return Published(
        project_id=project,
        dashboard_url=workspace.dashboard_url(project),
        snapshot_id=snapshot_id,
        snapshot_url=url,
        snapshot_bytes=snapshot_size(report),
        reference_dataset=dataset,
        superseded=superseded,
        message=message,
    )


def export_html(workspace: MonitoringWorkspace, store: Objects, team: str, ticker: str, day: date) -> str:
    """evidently's HTML of the snapshot stored for ``team`` / ``ticker`` / ``day``."""
    record = read_summary_record(store, ticker, day)
    if record is None:
        raise MonitoringExportError(f"team {team}: no monitoring report for {ticker} on {day.isoformat()}")
    snapshot_id, project = record.get("snapshot_id"), record.get("project_id")
    if not snapshot_id or not project:
        raise MonitoringExportError(
            f"team {team}: the monitoring report for {ticker} on {day.isoformat()} has no evidently snapshot "
            f"(status: {record.get('status', 'n/a')})"
        )
    return workspace.snapshot_html(str(project), str(snapshot_id))
