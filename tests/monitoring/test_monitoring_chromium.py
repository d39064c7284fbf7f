from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from _monitoring_frames import RETURN_INPUTS, crafted_features, crafted_predictions

from mlops_pipeline.config.teams import MonitoringSpec, RetrainPolicy
from mlops_pipeline.monitoring.report import ReportRequest, build_report
from mlops_pipeline.monitoring.results import Champion
from mlops_pipeline.monitoring.windows import window_sessions

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


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = crafted_features(drift_from="2024-05-01", shift=4.0)
    as_of = pd.Timestamp("2024-07-10").date()
    sessions = window_sessions(features, as_of, 20)
    report = build_report(
        ReportRequest(
            team="red",
            ticker="AAPL",
            as_of=as_of,
            features=features,
            predictions=crafted_predictions(features, sessions[:-1], noise=0.002),
            champion=Champion("red-AAPL", "1", "run", "2023-02-01", "2024-03-28"),
            input_features=RETURN_INPUTS,
            output_feature="target_next_return",
            monitoring=MonitoringSpec(window_days=20),
            retrain=RetrainPolicy(),
        )
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report.html, encoding="utf-8")
    return path


def test_report_is_self_contained(report_file: Path) -> None:
    html = report_file.read_text(encoding="utf-8")
    assert re.search(r"<script[^>]*\bsrc=", html, re.IGNORECASE) is None
    assert re.search(r"<link[^>]*href=\"https?:", html, re.IGNORECASE) is None
    assert re.search(r"<img[^>]*src=\"https?:", html, re.IGNORECASE) is None


def test_report_renders_in_headless_chromium(report_file: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={screenshot}", report_file.as_uri())
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000

    import matplotlib.image

    pixels = matplotlib.image.imread(screenshot)
    assert pixels.std() > 0.01  # not a blank page

    dom = _chromium(tmp_path, "--dump-dom", report_file.as_uri())
    assert 'id="monitoring-summary"' in dom
    assert "Drifted Columns" in dom  # rendered by evidently's inlined script, offline
