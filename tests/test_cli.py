from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_pipeline.cli import app

runner = CliRunner()


def test_help_lists_only_working_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "ui", "config", "teams", "sandbox"):
        assert command in result.output
    for sub in (["config", "show", "--help"], ["teams", "validate", "--help"], ["run", "--help"]):
        assert runner.invoke(app, sub).exit_code == 0


def test_config_show_masks_secrets(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "SUPERSECRETKEY42")
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["alphavantage_api_key"] == "*** (set)"
    assert "SUPERSECRETKEY42" not in result.output
    table = runner.invoke(app, ["config", "show"])
    assert "MLOPS_STORAGE" in table.output and "SUPERSECRETKEY42" not in table.output


def test_config_show_team_prints_resolved_config_and_hash(project: Path) -> None:
    from mlops_pipeline.config.teams import load_teams

    expected = load_teams(project / "teams", project / "ludwig_configs")["red"].config_hash
    result = runner.invoke(app, ["config", "show", "--team", "red", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["config_hash"] == expected
    assert shown["config"]["strategy"]["name"] == "rotate_best_gain"
    assert shown["config"]["risk"]["max_orders_per_day"] == 10  # inherited from base.yaml


def test_teams_validate_ok_and_failing(project: Path) -> None:
    ok = runner.invoke(app, ["teams", "validate"])
    assert ok.exit_code == 0 and "2 team(s) valid" in ok.output
    (project / "teams" / "red.yaml").write_text("tickers: [AAPL, AAPL]\n", encoding="utf-8")
    bad = runner.invoke(app, ["teams", "validate"])
    assert bad.exit_code == 1
    assert "teams/red.yaml: tickers: Value error, duplicate ticker 'AAPL'" in bad.output


def test_unknown_team_is_a_one_line_error(project: Path) -> None:
    result = runner.invoke(app, ["config", "show", "--team", "purple"])
    assert result.exit_code == 1
    assert "unknown team(s) purple" in result.output


def test_run_rejects_a_malformed_date(project: Path) -> None:
    result = runner.invoke(app, ["run", "--date", "03/27/2024"])
    assert result.exit_code == 1
    assert "--date must be YYYY-MM-DD" in result.output


def test_invalid_setting_is_named(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_BROKER", "robinhood")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 1
    assert "invalid settings" in result.output and "broker" in result.output


def test_mlops_run_starts_and_stops_the_embedded_sandbox(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil
    import socket
    import subprocess

    from _net import free_port

    (project / "teams" / "red.yaml").write_text("tickers: [MSFT]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").unlink()
    port = free_port()
    monkeypatch.setenv("MLOPS_SANDBOX_PORT", str(port))
    mlops = shutil.which("mlops") or str(Path(os.sys.executable).parent / "mlops")
    result = subprocess.run(
        [mlops, "run", "--date", "2024-03-27", "--stage", "market", "--stage", "train"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Daily loop for 2024-03-27 (2/2 ok)" in result.stdout
    assert "market prices:" in result.stdout and "Dagster UI:" in result.stdout
    with socket.socket() as sock:  # the embedded sandbox was stopped with the run
        assert sock.connect_ex(("127.0.0.1", port)) != 0

    holiday = subprocess.run(
        [mlops, "run", "--date", "2024-07-04"], check=False, capture_output=True, text=True, timeout=300
    )
    assert holiday.returncode == 1
    assert "2024-07-04 is not an NYSE trading day (July 4th)" in holiday.stderr


def test_compete_refuses_a_range_without_sessions(project: Path) -> None:
    result = runner.invoke(app, ["compete", "--from", "2024-03-29", "--to", "2024-03-31"])
    assert result.exit_code == 1
    assert "no NYSE trading day between 2024-03-29 and 2024-03-31" in result.output
