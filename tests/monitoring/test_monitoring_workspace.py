"""The local evidently workspace: one project per team, dashboards in code, snapshots replaced per
session, the reference window stored once, exports, and no half-written files."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest
from _monitoring_frames import crafted_report

from mlops_pipeline.monitoring.dashboard import build_dashboard, project_id
from mlops_pipeline.monitoring.publish import MonitoringExportError, export_html, publish_report
from mlops_pipeline.monitoring.report import MonitoringReport
from mlops_pipeline.monitoring.storage import read_summary_record
from mlops_pipeline.monitoring.workspace import LocalWorkspace
from mlops_pipeline.resources.object_store import LocalObjectStore, ObjectStore
from mlops_pipeline.team_store import MONITORING_SUMMARY_KEY

UI = "http://127.0.0.1:8000"
TICKERS = ["AAPL", "MSFT"]


@pytest.fixture(scope="module")
def reports() -> dict[str, MonitoringReport]:
    return {day: crafted_report(day) for day in ("2024-07-09", "2024-07-10")}


def _store(tmp_path: Path) -> ObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects")).scoped("teams/red")


def _series(workspace: Path, project: str) -> dict[str, list[list[float | None]]]:
    """Every dashboard panel's series as `evidently ui` computes them (its own storage code, in-process)."""
    import uuid

    from evidently.legacy.utils.sync import async_to_sync
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local import create_local_project_manager
    from evidently.ui.service.type_aliases import ZERO_UUID

    manager = create_local_project_manager(str(workspace), autorefresh=False)
    dashboard = async_to_sync(manager.get_project_dashboard(ZERO_UUID, uuid.UUID(project)))
    found = {}
    for panel in dashboard.panels:
        filters = [
            SeriesFilter(tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels)
            for v in panel.values
        ]
        response = async_to_sync(manager.get_data_series(ZERO_UUID, uuid.UUID(project), filters, None, None))
        by_filter: list[list[float | None]] = [[] for _ in filters]
        for series in response.series:
            by_filter[series.filter_index] = series.values
        found[panel.title] = by_filter
    return found


def test_one_project_per_team_found_again_with_an_unchanged_dashboard(tmp_path: Path) -> None:
    workspace = LocalWorkspace(tmp_path / "evidently", UI)
    first = workspace.ensure_project("red", TICKERS, "regression")
    assert first == str(project_id("red"))
    dashboard = tmp_path / "evidently" / first / "dashboard.json"
    written = dashboard.stat().st_mtime_ns
    assert workspace.ensure_project("red", TICKERS, "regression") == first
    assert dashboard.stat().st_mtime_ns == written  # identical dashboard: not rewritten
    assert [p.name for p in (tmp_path / "evidently").iterdir()] == [first]

    workspace.ensure_project("red", [*TICKERS, "TSLA"], "regression")  # a new ticker gets its panels
    titles = [panel["title"] for panel in json.loads(dashboard.read_text())["panels"]]
    assert titles[:2] == ["Drift share by ticker", "MAE of the champion by ticker"]
    assert [title.split(":")[0] for title in titles[2:]] == ["AAPL"] * 6 + ["MSFT"] * 6 + ["TSLA"] * 6
    assert not list(tmp_path.rglob("*.partial"))


def test_a_project_made_by_hand_is_found_by_name(tmp_path: Path) -> None:
    from evidently.ui.workspace import Workspace

    made = Workspace(str(tmp_path / "evidently")).create_project("team red")
    workspace = LocalWorkspace(tmp_path / "evidently", UI)
    assert workspace.ensure_project("red", TICKERS, "regression") == str(made.id)
    assert len(list((tmp_path / "evidently").glob("*/metadata.json"))) == 1


def test_reports_become_snapshots_a_rerun_replaces_its_session_and_dashboards_have_series(
    tmp_path: Path, reports: dict[str, MonitoringReport]
) -> None:
    root = tmp_path / "evidently"
    workspace, store = LocalWorkspace(root, UI), _store(tmp_path)
    first = publish_report(workspace, store, reports["2024-07-09"], TICKERS)
    second = publish_report(workspace, store, reports["2024-07-10"], TICKERS)
    rerun = publish_report(workspace, store, reports["2024-07-10"], TICKERS)
    snapshots = root / first.project_id / "snapshots"
    assert sorted(p.stem for p in snapshots.iterdir()) == sorted([first.snapshot_id, rerun.snapshot_id])
    assert rerun.superseded == second.snapshot_id
    assert rerun.snapshot_url == f"{UI}/projects/{first.project_id}/reports/{rerun.snapshot_id}"
    assert 20_000 < first.snapshot_bytes <= 300_000
    assert (snapshots / f"{rerun.snapshot_id}.json").stat().st_size == rerun.snapshot_bytes

    record = read_summary_record(store, "AAPL", date(2024, 7, 10))
    assert record is not None and record["snapshot_id"] == rerun.snapshot_id
    assert len(store.get_parquet(MONITORING_SUMMARY_KEY)) == 2

    # The reference window is stored once, as a dataset of the project.
    assert first.reference_dataset is not None and rerun.reference_dataset == first.reference_dataset
    from evidently.ui.workspace import Workspace

    datasets = Workspace(str(root)).list_datasets(first.project_id).datasets
    assert [(d.name, d.row_count) for d in datasets] == [("reference AAPL red-AAPL v1", 291)]

    series = _series(root, first.project_id)
    assert series["AAPL: Drift share of the input features"] == [[0.875, 0.875]]
    mae_champion, mae_naive = series["AAPL: MAE of the predicted close: champion vs naive (tomorrow = today)"]
    assert len(mae_champion) == 2 and all(c < n for c, n in zip(mae_champion, mae_naive, strict=True))
    predicted, realized = series["AAPL: Latest scored prediction vs realized close"]
    assert len(predicted) == len(realized) == 2
    aapl = [panel for title, panel in series.items() if title.startswith("AAPL")]
    assert len(aapl) == 6 and all(len(values) == 2 for panel in aapl for values in panel)  # no empty panel
    assert series["MSFT: Drift share of the input features"] == [[]]  # no MSFT snapshot yet

    html = export_html(workspace, store, "red", "AAPL", date(2024, 7, 10))
    assert "rsi_14" in html and "<html" in html.lower()


def test_no_snapshot_is_recorded_and_export_says_why(
    tmp_path: Path, reports: dict[str, MonitoringReport]
) -> None:
    from dataclasses import replace

    empty = replace(reports["2024-07-10"], snapshot=None, champion=None, reference=None)
    workspace, store = LocalWorkspace(tmp_path / "evidently", UI), _store(tmp_path)
    published = publish_report(workspace, store, empty, TICKERS)
    assert published.snapshot_id is None and published.snapshot_url is None
    assert published.message.startswith("no evidently report")
    with pytest.raises(MonitoringExportError, match=r"has no evidently snapshot \(status: drift\)"):
        export_html(workspace, store, "red", "AAPL", date(2024, 7, 10))
    with pytest.raises(MonitoringExportError, match="team red: no monitoring report for AAPL on 2024-07-08"):
        export_html(workspace, store, "red", "AAPL", date(2024, 7, 8))


def test_an_interrupted_write_leaves_nothing_half_written(
    tmp_path: Path, reports: dict[str, MonitoringReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "evidently"
    workspace = LocalWorkspace(root, UI)

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        workspace.ensure_project("red", TICKERS, "regression")
    assert not list(root.rglob("*.json")) and not list(tmp_path.rglob("*.partial"))  # no project at all
    monkeypatch.undo()

    project = workspace.ensure_project("red", TICKERS, "regression")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        workspace.add_snapshot(project, reports["2024-07-10"].snapshot)
    assert not list((root / project / "snapshots").iterdir())


def test_dashboard_ids_are_stable_and_direction_teams_get_no_price_errors() -> None:
    regression = build_dashboard("red", TICKERS, "regression")
    assert json.loads(regression.json()) == json.loads(build_dashboard("red", TICKERS, "regression").json())
    titles = [panel.title for panel in build_dashboard("blue", ["TSLA"], "direction").panels]
    assert "TSLA: Directional accuracy: champion vs naive" in titles
    assert not [title for title in titles if "MAE" in title or "RMSE" in title]
    assert {str(panel.id) for panel in regression.panels}.isdisjoint(
        str(panel.id) for panel in build_dashboard("blue", TICKERS, "regression").panels
    )
