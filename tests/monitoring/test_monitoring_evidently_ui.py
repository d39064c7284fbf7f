"""The pipeline writing through evidently's remote workspace API to a real `evidently ui` (as in the
compose stack), and the dashboards read back through the UI's HTTP API."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from _evidently_ui import evidently_ui
from _monitoring_frames import crafted_report
from _net import free_port

from mlops_pipeline.monitoring.publish import export_html, publish_report
from mlops_pipeline.monitoring.report import MonitoringReport
from mlops_pipeline.monitoring.workspace import LocalWorkspace, RemoteWorkspace, WorkspaceError
from mlops_pipeline.resources.object_store import LocalObjectStore

pytestmark = pytest.mark.integration

WRITE_TOKEN = secrets.token_urlsafe(16)  # the UI's write secret, made up per run
TICKERS = ["AAPL", "MSFT"]


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with evidently_ui(tmp_path_factory.mktemp("evidently") / "workspace", secret=WRITE_TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def reports() -> dict[str, MonitoringReport]:
    return {day: crafted_report(day) for day in ("2024-07-09", "2024-07-10")}


def _panel_series(url: str, project: str) -> dict[str, list[list[float]]]:
    """What the UI's dashboard page asks for: each panel's series over every snapshot."""
    dashboard = httpx.get(f"{url}/api/v2/dashboards/{project}", timeout=30).json()
    found = {}
    for panel in dashboard["panels"]:
        filters = [
            {key: value[key] for key in ("tags", "metadata", "metric", "metric_labels")}
            for value in panel["values"]
        ]
        response = httpx.post(
            f"{url}/api/v2/snapshots/{project}/data_series_batch", json={"series_filter": filters}, timeout=60
        )
        response.raise_for_status()
        by_filter: list[list[float]] = [[] for _ in filters]
        for series in response.json()["series"]:
            by_filter[series["filter_index"]] = series["values"]
        found[panel["title"]] = by_filter
    return found


def test_snapshots_go_through_the_remote_api_into_one_project_with_dashboards(
    ui_url: str, reports: dict[str, MonitoringReport], tmp_path: Path
) -> None:
    workspace = RemoteWorkspace(ui_url, ui_url, WRITE_TOKEN)
    store = LocalObjectStore(root=str(tmp_path / "objects")).scoped("teams/red")
    first = publish_report(workspace, store, reports["2024-07-09"], TICKERS)
    second = publish_report(workspace, store, reports["2024-07-10"], TICKERS)
    rerun = publish_report(workspace, store, reports["2024-07-10"], TICKERS)

    projects = httpx.get(f"{ui_url}/api/projects", timeout=30).json()
    assert [(p["id"], p["name"]) for p in projects] == [(first.project_id, "team red")]  # never duplicated
    snapshots = httpx.get(f"{ui_url}/api/projects/{first.project_id}/snapshots", timeout=30).json()
    assert sorted(s["id"] for s in snapshots) == sorted([first.snapshot_id, rerun.snapshot_id])
    assert rerun.superseded == second.snapshot_id
    assert {tuple(s["tags"]) for s in snapshots} == {
        ("team:red", "ticker:AAPL", f"session:{day}", "model_version:1")
        for day in ("2024-07-09", "2024-07-10")
    }
    assert rerun.snapshot_url == f"{ui_url}/projects/{first.project_id}/reports/{rerun.snapshot_id}"

    series = _panel_series(ui_url, first.project_id)
    assert series["AAPL: Drift share of the input features"] == [[0.875, 0.875]]
    assert series["AAPL: Drifted input features"] == [[7.0, 7.0]]
    champion, naive = series["AAPL: RMSE of the predicted close: champion vs naive"]
    assert len(champion) == 2 and all(c < n for c, n in zip(champion, naive, strict=True))
    assert all(len(values) == 2 for values in series["AAPL: Directional accuracy: champion vs naive"])
    assert series["Drift share by ticker"] == [[0.875, 0.875], []]  # AAPL, and no MSFT report yet

    datasets = httpx.get(f"{ui_url}/api/datasets", params={"project_id": first.project_id}, timeout=30).json()
    assert [d["name"] for d in datasets["datasets"]] == ["reference AAPL red-AAPL v1"]

    html = export_html(workspace, store, "red", "AAPL", date(2024, 7, 10))
    assert "rsi_14" in html and "<html" in html.lower()


def test_a_wrong_secret_is_refused_and_named(ui_url: str) -> None:
    workspace = RemoteWorkspace(ui_url, ui_url, "not-the-secret")
    with pytest.raises(WorkspaceError, match=rf"evidently UI at {ui_url}: creating the project failed"):
        workspace.ensure_project("blue", ["TSLA"], "direction")
    projects = httpx.get(f"{ui_url}/api/projects", timeout=30).json()
    assert "team blue" not in [p["name"] for p in projects]


def test_no_ui_listening_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(WorkspaceError, match=rf"no evidently UI answers at {url} \(MLOPS_EVIDENTLY_URL\)"):
        RemoteWorkspace(url, url)


def _eventually(probe: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.25)
    return False


def test_a_running_ui_shows_what_the_pipeline_writes_to_its_local_workspace(
    reports: dict[str, MonitoringReport], tmp_path: Path
) -> None:
    """Embedded mode: `mlops ui` serves the workspace that runs write into, without a restart."""
    root = tmp_path / "evidently"
    store = LocalObjectStore(root=str(tmp_path / "objects")).scoped("teams/red")
    with evidently_ui(root) as url:
        workspace = LocalWorkspace(root, url)
        first = publish_report(workspace, store, reports["2024-07-09"], TICKERS)

        def listed() -> list[str]:
            response = httpx.get(f"{url}/api/projects/{first.project_id}/snapshots", timeout=30)
            return [s["id"] for s in response.json()] if response.status_code == 200 else []

        assert _eventually(lambda: listed() == [first.snapshot_id])  # a new project and its snapshot
        rerun = publish_report(workspace, store, reports["2024-07-09"], TICKERS)
        assert _eventually(lambda: listed() == [rerun.snapshot_id])  # the rerun replaced it
        series = _panel_series(url, first.project_id)
        assert series["AAPL: Drift share of the input features"] == [[0.875]]
