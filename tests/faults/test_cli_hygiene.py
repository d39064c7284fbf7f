"""The command line under hostile text: user input, settings and error messages print as they are
(never read as Rich markup), and the exit code says whether the input was wrong (2) or something
failed while running (1)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.console import console, err_console

runner = CliRunner()
HOSTILE = "[/tmp/x] [bold]y[/bold] [link=file:///etc]z"


def test_the_consoles_never_read_markup() -> None:
    assert not console._markup and not err_console._markup


def test_pydantic_details_of_invalid_settings_survive(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_PORT", "[/x]")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    first = result.output.strip().splitlines()[0]
    assert first.startswith("error: invalid settings")
    # the field, the value and pydantic's error type, brackets included
    assert "sandbox_port" in result.output
    assert "input_value='[/x]'" in result.output and "[type=int_parsing" in result.output


def test_a_hostile_team_name_prints_as_typed(project: Path) -> None:
    for command in (["config", "show", "--team", HOSTILE], ["stop", "--team", HOSTILE]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert HOSTILE in result.output and "MarkupError" not in result.output


def test_a_session_report_prints_failure_notes_as_they_are() -> None:
    from mlops_pipeline.config.settings import load_settings
    from mlops_pipeline.session_runner import PartitionRun, SessionReport

    report = SessionReport(date(2024, 3, 27), load_settings())
    report.runs.append(PartitionRun("red_predict", "MSFT", "failure", 1.0, "0" * 36, HOSTILE))
    out = io.StringIO()
    Console(file=out, width=400, markup=False).print(report.render())
    assert HOSTILE in out.getvalue() and "failure" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["run", "--date", "2024-13-01"], 2),  # malformed option
        (["run", "--stage", "deploy"], 2),  # unknown choice
        (["run", "--config-ref", "main"], 2),  # --config-ref without one --team
        (["compete", "--from", "2024-03-27"], 2),  # missing option
        (["model", "list", "--team", "red", "--ticker", "MSFT"], 1),  # runtime: nothing registered
    ],
)
def test_usage_errors_exit_2_runtime_failures_exit_1(project: Path, args: list[str], code: int) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.mark.integration  # connects to a closed port on 127.0.0.1
def test_an_unreachable_sandbox_is_a_one_line_runtime_failure(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _net import free_port

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLOPS_SANDBOX_URL", url)
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-03-27")
    result = runner.invoke(app, ["run", "--date", "2024-03-27", "--stage", "market"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"error: MLOPS_SANDBOX_URL={url} does not answer on /_sandbox/health"
    ]
