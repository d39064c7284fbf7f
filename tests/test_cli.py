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


def test_unknown_team_is_a_one_line_usage_error(project: Path) -> None:
    result = runner.invoke(app, ["config", "show", "--team", "purple"])
    assert result.exit_code == 2
    assert "unknown team(s) purple" in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "--date", "03/27/2024"], "--date"),
        (["compete", "--from", "2024-06-10", "--to", "06/14/2024"], "--to"),
        (["run", "--stage", "deploy"], "--stage"),
    ],
)
def test_malformed_options_are_usage_errors(project: Path, args: list[str], option: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in " ".join(result.output.split())


def test_invalid_setting_is_named(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_BROKER", "robinhood")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "invalid settings" in result.output and "broker" in result.output


def test_user_text_is_never_read_as_markup(project: Path) -> None:
    result = runner.invoke(app, ["config", "show", "--team", "[/tmp/x]"])
    assert result.exit_code == 2
    assert "[/tmp/x]" in result.output and "MarkupError" not in result.output


def test_version_names_the_platform_and_its_tools() -> None:
    result = runner.invoke(app, ["version", "--json"])
    assert result.exit_code == 0, result.output
    versions = json.loads(result.output)
    assert versions["mlops-pipeline"] == "0.1.0"
    assert {"dagster", "mlflow", "ludwig", "evidently", "python"} <= set(versions)


def test_every_help_page_loads_no_heavy_library() -> None:
    """``--help`` answers at once: no command imports Dagster, pandas, MLflow or torch to describe itself."""
    import subprocess
    import sys

    script = """
import sys
import click
import typer
from typer.testing import CliRunner
from mlops_pipeline.cli import app

def paths(command, prefix):
    yield prefix
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from paths(sub, [*prefix, name])

runner = CliRunner()
for path in paths(typer.main.get_command(app), []):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, (path, result.output)
heavy = ("dagster", "pandas", "scipy", "mlflow", "torch", "ludwig", "evidently", "pydantic_settings")
print(",".join(sorted(name for name in heavy if name in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.integration
def test_mlops_run_starts_and_stops_the_embedded_sandbox(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil
    import socket
    import subprocess

    import dagster as dg
    from _net import free_port
    from _teams import write_tiny_configs

    tiny_return, _ = write_tiny_configs(project)  # a two-epoch model: the run is what is tested
    (project / "teams" / "red.yaml").write_text(
        f"tickers: [MSFT]\nmodel: {{ludwig_config: {tiny_return}}}\n", encoding="utf-8"
    )
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
    assert "Session 2024-03-27 (2/2 ok)" in result.stdout
    assert "market prices:" in result.stdout and "Dagster UI:" in result.stdout
    with socket.socket() as sock:  # the embedded sandbox was stopped with the run
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    runs = _runs(isolated_env)  # each (job, partition) is a run of the instance
    assert sorted((run.job_name, run.tags["dagster/partition"]) for run in runs) == [
        ("market_daily", "2024-03-27|MSFT"),
        ("red_train", "2024-03-27|MSFT"),
    ]
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}


def _runs(home: Path) -> list:
    """Every run recorded in the embedded Dagster instance under ``home`` (none if it was never created)."""
    import dagster as dg

    dagster_home = home / "dagster"
    if not (dagster_home / "dagster.yaml").exists():
        return []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return list(instance.get_runs())


def _refused_run(monkeypatch: pytest.MonkeyPatch, home: Path, *args: str):
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-06-14")  # a Friday: the last completed session
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # restored after the test
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert _runs(home) == []  # refused before any run
    assert not list((home / "objects").rglob("*.parquet"))
    return lines[0]


def test_run_on_a_holiday_is_refused_naming_it(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _refused_run(monkeypatch, isolated_env, "--date", "2024-07-04")
    assert line == "error: 2024-07-04 is not an NYSE session (July 4th)"  # Independence Day
    weekend = _refused_run(monkeypatch, isolated_env, "--date", "2024-06-15")
    assert weekend == "error: 2024-06-15 is not an NYSE session (a Saturday)"


def test_run_after_the_last_completed_session_is_refused(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _refused_run(monkeypatch, isolated_env, "--date", "2024-06-17")
    assert line == "error: 2024-06-17 is after the last completed session 2024-06-14"


def test_run_before_the_first_session_names_the_setting(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SESSIONS_START", "2024-01-01")  # a holiday: the first session is Jan 2
    line = _refused_run(monkeypatch, isolated_env, "--date", "2023-12-29")
    assert line == "error: 2023-12-29 is before the first session 2024-01-02 (MLOPS_SESSIONS_START)"


def test_run_rejects_an_unknown_team(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _refused_run(monkeypatch, isolated_env, "--team", "purple")
    assert line == "error: unknown team(s) purple; teams: blue, red"


def test_compete_refuses_a_range_without_sessions(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-06-14")
    result = runner.invoke(app, ["compete", "--from", "2024-03-29", "--to", "2024-03-31"])
    assert result.exit_code == 2
    assert "no NYSE session between 2024-03-29 and 2024-03-31" in result.output


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2024-06-10", "2024-06-17", "2024-06-10 to 2024-06-17 is outside the sessions: "
         "the valid range is 2020-01-02 to 2024-06-14"),
        ("2024-06-14", "2024-06-10", "--to 2024-06-10 is before --from 2024-06-14"),
    ],
)  # fmt: skip
def test_compete_refuses_a_range_outside_the_sessions(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, start: str, end: str, message: str
) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-06-14")
    monkeypatch.setenv("DAGSTER_HOME", str(isolated_env / "dagster"))
    result = runner.invoke(app, ["compete", "--from", start, "--to", end])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == f"error: {message}"  # one message (rich wraps at 80)
    assert _runs(isolated_env) == []
