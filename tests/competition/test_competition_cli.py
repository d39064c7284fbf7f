"""``leaderboard`` and ``teams diff`` from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.resources.object_store import object_store_from_settings

runner = CliRunner()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        check=True,
    )


def test_teams_diff_between_teams_and_refs(project: Path) -> None:
    result = runner.invoke(app, ["teams", "diff", "red", "blue"])
    assert result.exit_code == 0, result.output
    assert "strategy.name" in result.output and "tickers" in result.output
    assert "risk.max_orders_per_day" not in result.output  # equal values are not listed

    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "main")
    _git(project, "checkout", "-q", "-b", "team/red")
    red = project / "teams/red.yaml"
    red.write_text(red.read_text() + "costs: {slippage_bps: 9}\n")
    _git(project, "commit", "-q", "-am", "red: slippage")
    _git(project, "checkout", "-q", "main")

    result = runner.invoke(app, ["teams", "diff", "red", "red@team/red"])
    assert result.exit_code == 0, result.output
    assert "costs.slippage_bps" in result.output and "git:team/red:teams/red.yaml@" in result.output
    same = runner.invoke(app, ["teams", "diff", "red", "red@main"])
    assert same.exit_code == 0 and "no differences" in same.output

    missing = runner.invoke(app, ["teams", "diff", "red", "red@team/none"])
    assert missing.exit_code == 2
    assert "unknown git ref 'team/none'" in missing.output
    unknown = runner.invoke(app, ["teams", "diff", "red", "purple"])
    assert unknown.exit_code == 2 and "unknown team(s) purple" in unknown.output


def test_leaderboard_with_and_without_data(project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["leaderboard", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["rank_by"] == "return"
    assert [row["rank"] for row in shown["teams"]] == [None, None]

    store = object_store_from_settings(load_settings()).scoped("teams/blue")
    store.put_parquet(
        "journal/equity.parquet",
        pd.DataFrame(
            {
                "date": pd.to_datetime(["2024-01-02"]),
                "equity": [101_000.0],
                "cash": [1_000.0],
                "long_market_value": [100_000.0],
                "return_since_start": [0.01],
            }
        ),
    )
    page = tmp_path / "board.html"
    result = runner.invoke(app, ["leaderboard", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "Leaderboard (ranked by return)" in result.output
    assert "data:image/png;base64," in page.read_text()
    shown = json.loads(runner.invoke(app, ["leaderboard", "--json"]).output)
    assert shown["teams"][0]["team"] == "blue" and shown["teams"][0]["rank"] == 1
