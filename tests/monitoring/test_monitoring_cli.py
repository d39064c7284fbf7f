"""`mlops monitoring export`: a stored snapshot as HTML on demand; usage errors exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _monitoring_frames import crafted_report
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.monitoring.publish import publish_report
from mlops_pipeline.monitoring.report import MonitoringReport
from mlops_pipeline.monitoring.workspace import workspace_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings

runner = CliRunner()


@pytest.fixture(scope="module")
def report() -> MonitoringReport:
    return crafted_report("2024-07-10")


@pytest.fixture
def stored(project: Path, report: MonitoringReport) -> Path:
    """Team red's AAPL report of 2024-07-10 in the embedded workspace."""
    settings = load_settings()
    store = object_store_from_settings(settings).scoped("teams/red")
    publish_report(workspace_from_settings(settings), store, report, ["AAPL", "MSFT", "NVDA"])
    return settings.evidently_workspace_path


def test_export_writes_the_snapshot_as_html(stored: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "aapl.html"
    target.parent.mkdir()
    args = [
        "monitoring",
        "export",
        "--team",
        "red",
        "--ticker",
        "aapl",
        "--date",
        "2024-07-10",
        "-o",
        str(target),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    assert "rsi_14" in html and "K-S p_value" in html
    assert re.search(r"<script[^>]*\bsrc=", html, re.IGNORECASE) is None  # self-contained: works offline
    assert str(target) in result.output
    assert [p.name for p in target.parent.iterdir()] == ["aapl.html"]  # no partial file left


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--team", "purple", "--ticker", "AAPL", "--date", "2024-07-10"], 2, "unknown team(s) purple"),
        (["--team", "red", "--ticker", "TSLA", "--date", "2024-07-10"], 2, "team red does not trade TSLA"),
        (["--team", "red", "--ticker", "AAPL", "--date", "10/07/2024"], 2, "Invalid value for '--date'"),
        (
            ["--team", "red", "--ticker", "AAPL", "--date", "2024-07-09"],
            1,
            "no monitoring report for AAPL on 2024-07-09",
        ),
    ],
)
def test_export_errors_are_one_line(stored: Path, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["monitoring", "export", *args])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())
