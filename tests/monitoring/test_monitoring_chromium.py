"""The evidently UI in headless Chromium: a team's dashboard and one snapshot (screenshots kept)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _evidently_ui import evidently_ui
from _monitoring_frames import crafted_report

from mlops_pipeline.monitoring.publish import Published, publish_report
from mlops_pipeline.monitoring.workspace import LocalWorkspace
from mlops_pipeline.resources.object_store import LocalObjectStore

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
]

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install -y chromium)"
    ),
]


def _chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium offline; on timeout its own process group is killed."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, f"chromium exited with {process.returncode}"
    return output


def _artifacts_dir() -> Path:
    """Where the UI tests leave their screenshots (as tests/ops/test_dagster_ui.py does)."""
    folder = Path(os.environ.get("MLOPS_TEST_ARTIFACTS_DIR", REPO_ROOT / ".ci" / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """Team red's project with three sessions of AAPL, served by `evidently ui`."""
    root = tmp_path_factory.mktemp("monitoring-ui")
    store = LocalObjectStore(root=str(root / "objects")).scoped("teams/red")
    workspace_dir = root / "evidently"
    with evidently_ui(workspace_dir) as url:
        workspace = LocalWorkspace(workspace_dir, url)  # the pipeline writes while the UI runs
        last = None
        for day in ("2024-07-08", "2024-07-09", "2024-07-10"):
            last = publish_report(workspace, store, crafted_report(day), ["AAPL", "MSFT"])
        assert last is not None and last.snapshot_url is not None
        deadline = time.monotonic() + 60  # the UI's file watcher picks the snapshots up
        while len(httpx.get(f"{url}/api/projects/{last.project_id}/snapshots", timeout=30).json()) < 3:
            assert time.monotonic() < deadline, "the evidently UI did not list the new snapshots"
            time.sleep(0.5)
        yield last


def _screenshot(tmp_path: Path, url: str, name: str) -> Path:
    target = _artifacts_dir() / name
    target.unlink(missing_ok=True)
    _chromium(tmp_path, "--window-size=1400,2000", f"--screenshot={target}", url)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000

    import matplotlib.image

    assert matplotlib.image.imread(target).std() > 0.01  # not a blank page
    return target


def test_team_dashboard_shows_the_panels_over_sessions(published: Published, tmp_path: Path) -> None:
    last = published
    _screenshot(tmp_path, last.dashboard_url, "evidently-dashboard-red.png")
    dom = _chromium(tmp_path, "--dump-dom", last.dashboard_url)
    assert "team red" in dom
    for title in (
        "Drift share by ticker",
        "AAPL: Drift share of the input features",
        "AAPL: MAE of the predicted close: champion vs naive (tomorrow = today)",
        "AAPL: Directional accuracy: champion vs naive",
        "AAPL: Latest scored prediction vs realized close",
        "MSFT: Drifted input features",
    ):
        assert title in dom, title
    assert "2024-07-08" in dom and "2024-07-10" in dom  # the sessions are the time axis


def test_one_snapshot_renders_its_drift_and_performance(published: Published, tmp_path: Path) -> None:
    last = published
    assert last.snapshot_url is not None
    _screenshot(tmp_path, last.snapshot_url, "evidently-snapshot-red-AAPL-2024-07-10.png")
    dom = _chromium(tmp_path, "--dump-dom", last.snapshot_url)
    assert "Drift is detected for 87.5% of columns (7 out of 8)" in dom
    assert "rsi_14" in dom and "Regression Model Performance" in dom
