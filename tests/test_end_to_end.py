"""Two teams through every stage for two trading days, on the embedded defaults and the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from _teams import write_two_small_teams
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import TeamConfig, load_teams
from mlops_pipeline.orchestration import run_daily
from mlops_pipeline.resources.object_store import ObjectStore, object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.serving.launch import Deployment

pytestmark = pytest.mark.slow
DAY_1, DAY_2 = date(2024, 3, 27), date(2024, 3, 28)


@pytest.fixture
def sandbox_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    sandbox = start_sandbox_thread(SandboxConfig(today=DAY_1, broker_db=tmp_path / "broker.sqlite"))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
    try:
        yield sandbox.base_url
    finally:
        sandbox.stop()


@pytest.fixture
def platform(
    project: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[PlatformSettings, dict[str, TeamConfig], ObjectStore]:
    """Both teams on the embedded defaults, against the test's sandbox."""
    write_two_small_teams(project)
    settings = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
    ensure_home(settings)
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    return settings, teams, object_store_from_settings(settings)


def test_two_teams_two_days_every_stage(
    platform: tuple[PlatformSettings, dict[str, TeamConfig], ObjectStore],
) -> None:
    settings, teams, store = platform

    first = run_daily(settings, teams, as_of=DAY_1)
    assert first.ok, [(run.job, run.partition, run.note) for run in first.runs if run.status != "success"]
    red_predictions = store.get_parquet("teams/red/predictions/MSFT.parquet")
    assert len(red_predictions) == 1
    row = red_predictions.iloc[0]
    assert row["as_of_date"].date() == DAY_1 and row["target_date"].date() == DAY_2
    assert row["model_name"] == "red-MSFT" and row["model_version"] == "1"
    blue_predictions = store.get_parquet("teams/blue/predictions/TSLA.parquet")
    assert 0.0 <= blue_predictions.iloc[0]["prob_up"] <= 1.0
    orders = store.get_parquet("teams/red/journal/orders.parquet")
    assert set(orders["symbol"]) <= {"MSFT"}
    assert store.exists("teams/red/monitoring/index.html")
    assert store.exists("competition/leaderboard.html")

    rerun = run_daily(settings, teams, as_of=DAY_1)  # same day again: nothing new anywhere
    assert rerun.ok
    assert len(store.get_parquet("teams/red/journal/orders.parquet")) == len(orders)
    assert len(store.get_parquet("teams/red/predictions/MSFT.parquet")) == 1

    second = run_daily(settings, teams, as_of=DAY_2)
    assert second.ok
    assert len(store.get_parquet("teams/red/predictions/MSFT.parquet")) == 2
    equity = store.get_parquet("teams/red/journal/equity.parquet")
    assert [day.date() for day in equity["date"]] == [DAY_1, DAY_2]
    if len(orders):  # day 1's market order filled at day 2's open
        positions = store.get_parquet("teams/red/journal/positions.parquet")
        assert "MSFT" in set(positions["symbol"])

    deployment = Deployment.from_json(store.get_text("teams/red/serving/deployment.json"))
    stopped = CliRunner().invoke(app, ["stop", "--team", "red"])
    assert stopped.exit_code == 0, stopped.output
    assert f"stopped {deployment.launcher} {deployment.instance_id}" in stopped.output
    assert not store.exists("teams/red/serving/deployment.json")


def test_replay_of_five_sessions_every_stage_resumes_without_duplicates(
    platform: tuple[PlatformSettings, dict[str, TeamConfig], ObjectStore],
) -> None:
    from mlflow import MlflowClient

    from mlops_pipeline.orchestration import replay

    settings, teams, store = platform
    start, end = date(2024, 3, 21), date(2024, 3, 27)  # Thu, Fri, Mon, Tue, Wed

    interrupted = replay(settings, teams, start, date(2024, 3, 22))
    assert [report.as_of for report in interrupted] == [date(2024, 3, 21), date(2024, 3, 22)]
    resumed = replay(settings, teams, start, end)
    assert [report.as_of for report in resumed] == [date(2024, 3, 25), date(2024, 3, 26), date(2024, 3, 27)]
    assert all(report.ok for report in interrupted + resumed)
    predictions = store.get_parquet("teams/red/predictions/MSFT.parquet")
    assert len(predictions) == 5
    # The weekly retraining (Saturdays 06:00) happened once, on Monday: two model versions.
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert len(client.search_model_versions("name = 'red-MSFT'")) == 2
    orders = store.get_parquet("teams/red/journal/orders.parquet")
    equity = store.get_parquet("teams/red/journal/equity.parquet")
    assert len(equity) == 5

    # Re-running a past session by hand: no order against today's account, history kept as it was.
    past = run_daily(settings, teams, as_of=date(2024, 3, 22))
    assert past.ok
    pd.testing.assert_frame_equal(store.get_parquet("teams/red/journal/orders.parquet"), orders)
    pd.testing.assert_frame_equal(store.get_parquet("teams/red/journal/equity.parquet"), equity)
    pd.testing.assert_frame_equal(store.get_parquet("teams/red/predictions/MSFT.parquet"), predictions)
    assert len(client.search_model_versions("name = 'red-MSFT'")) == 2
