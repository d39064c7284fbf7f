"""Two teams through every stage: two sessions on the synthetic sandbox, three replayed from a recording."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from _teams import write_two_small_teams
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import BACKFILL_ID_TAG
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.platform import Platform, load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.recording import read_recording
from mlops_pipeline.market.store import read_prices
from mlops_pipeline.monitoring.dashboard import project_id
from mlops_pipeline.replay import SESSION_TAG, replay
from mlops_pipeline.resources.object_store import ObjectStore, object_store_from_settings
from mlops_pipeline.run_launcher import PID_TAG
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.serving.launch import Deployment
from mlops_pipeline.serving.predictions import read_predictions
from mlops_pipeline.session_runner import run_session

pytestmark = pytest.mark.integration
DAY_1, DAY_2 = date(2024, 3, 27), date(2024, 3, 28)


@pytest.fixture
def sandbox_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    sandbox = start_sandbox_thread(SandboxConfig(today=DAY_2, broker_db=tmp_path / "broker.sqlite"))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
    try:
        yield sandbox.base_url
    finally:
        sandbox.stop()


def _both_teams(project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Platform, ObjectStore]:
    write_two_small_teams(project)
    settings = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
    ensure_home(settings)
    return load_platform(settings), object_store_from_settings(settings)


@pytest.fixture
def platform(
    project: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Platform, ObjectStore]:
    """Both teams on the embedded defaults, against the test's sandbox."""
    return _both_teams(project, monkeypatch)


@pytest.fixture
def recorded_platform(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Platform, ObjectStore, Path]]:
    """Both teams against a sandbox that serves only a recording, made with `mlops market record`."""
    recording = tmp_path / "recording"
    synthetic = start_sandbox_thread(SandboxConfig(today=DAY_2))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", synthetic.base_url)
    try:
        command = ["market", "record", "--symbols", "MSFT,TSLA", "--out", str(recording)]
        recorded = CliRunner().invoke(app, command)
        assert recorded.exit_code == 0, recorded.output
    finally:
        synthetic.stop()
    sandbox = start_sandbox_thread(
        SandboxConfig(
            today=DAY_2, broker_db=tmp_path / "broker.sqlite", recorded=recording, recorded_only=True
        )
    )
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
    try:
        yield (*_both_teams(project, monkeypatch), recording)
    finally:
        sandbox.stop()


def test_two_teams_two_sessions_every_stage(platform: tuple[Platform, ObjectStore]) -> None:
    platform_, store = platform

    first = run_session(platform_, DAY_1)
    assert first.ok, [(run.job, run.partition, run.note) for run in first.runs if run.status != "success"]
    red_predictions = read_predictions(store.scoped("teams/red"), "MSFT")
    assert len(red_predictions) == 1
    row = red_predictions.iloc[0]
    assert row["as_of_date"].date() == DAY_1 and row["target_date"].date() == DAY_2
    assert row["model_name"] == "red-MSFT" and row["model_version"] == "1"
    blue_predictions = read_predictions(store.scoped("teams/blue"), "TSLA")
    assert 0.0 <= blue_predictions.iloc[0]["prob_up"] <= 1.0
    orders = store.get_parquet("teams/red/journal/orders.parquet")
    assert set(orders["symbol"]) <= {"MSFT"}
    assert store.exists("teams/red/monitoring/summary.parquet")
    evidently = platform_.settings.evidently_workspace_path
    assert (evidently / str(project_id("red")) / "metadata.json").is_file()  # red's evidently project
    assert store.exists("competition/leaderboard.html")

    assert store.exists("competition/leaderboards/2024-03-27.html")

    rerun = run_session(platform_, DAY_1)  # same session again: nothing new anywhere
    assert rerun.ok
    assert len(store.get_parquet("teams/red/journal/orders.parquet")) == len(orders)
    assert len(read_predictions(store.scoped("teams/red"), "MSFT")) == 1

    second = run_session(platform_, DAY_2)
    assert second.ok
    assert len(read_predictions(store.scoped("teams/red"), "MSFT")) == 2
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


def test_replay_of_recorded_sessions_every_stage_resumes_without_duplicates(
    recorded_platform: tuple[Platform, ObjectStore, Path],
) -> None:
    from mlflow import MlflowClient

    platform_, store, recording = recorded_platform
    start, end = date(2024, 3, 21), date(2024, 3, 25)  # Thu, Fri, then Mon (the weekly retraining)

    teams = list(platform_.teams)
    with dg.DagsterInstance.get() as instance:
        interrupted = replay(instance, platform_, start, date(2024, 3, 22), teams)
        assert [session.day for session in interrupted.sessions] == [date(2024, 3, 21), date(2024, 3, 22)]
        resumed = replay(instance, platform_, start, end, teams)
        assert [session.day for session in resumed.sessions] == [start, date(2024, 3, 22), end]
        assert interrupted.ok and resumed.ok, (interrupted, resumed)
        # The sessions done before are not backfilled again; each new one is one backfill of the
        # instance (listed in the UI), whose runs went through the queue and the fork launcher.
        assert [session.backfill_id for session in resumed.sessions[:2]] == [None, None]
        backfills = {backfill.backfill_id: backfill for backfill in instance.get_backfills()}
        for session in interrupted.sessions + resumed.sessions[2:]:
            backfill = backfills[session.backfill_id]
            assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS
            assert backfill.tags[SESSION_TAG] == session.day.isoformat()
            runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: session.backfill_id}))
            assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
            assert all(PID_TAG in run.tags for run in runs)
    predictions = read_predictions(store.scoped("teams/red"), "MSFT")
    assert len(predictions) == 3
    # The weekly retraining (Saturdays 06:00) happened once, on Monday: two model versions.
    client = MlflowClient(platform_.settings.mlflow_tracking_uri)
    assert len(client.search_model_versions("name = 'red-MSFT'")) == 2
    # The stored history is the recording, as it was known on each session.
    recorded = read_recording(recording / "MSFT.csv").set_index("date")
    stored, _ = read_prices(store, "MSFT", end)
    assert stored is not None and stored["date"].iloc[-1].date() == end
    pd.testing.assert_series_equal(
        stored.set_index("date")["close"], recorded.loc[: pd.Timestamp(end), "close"], check_names=False
    )
    orders = store.get_parquet("teams/red/journal/orders.parquet")
    equity = store.get_parquet("teams/red/journal/equity.parquet")
    assert len(equity) == 3

    # Re-running a past session by hand: no order against today's account, history kept as it was.
    past = run_session(platform_, date(2024, 3, 22))
    assert past.ok
    pd.testing.assert_frame_equal(store.get_parquet("teams/red/journal/orders.parquet"), orders)
    pd.testing.assert_frame_equal(store.get_parquet("teams/red/journal/equity.parquet"), equity)
    pd.testing.assert_frame_equal(read_predictions(store.scoped("teams/red"), "MSFT"), predictions)
    assert len(client.search_model_versions("name = 'red-MSFT'")) == 2

    # The last session again, everything of it (`mlops compete --force`): every partition is
    # materialized again from what is stored; no order, prediction or model version is added.
    with dg.DagsterInstance.get() as instance:
        forced = replay(instance, platform_, end, end, teams, everything=True)
    assert forced.ok, forced
    (again,) = forced.sessions
    assert again.backfill_id is not None and again.materialized == again.targeted > 0, again
    pd.testing.assert_frame_equal(store.get_parquet("teams/red/journal/orders.parquet"), orders)
    assert len(store.get_parquet("teams/red/journal/equity.parquet")) == 3
    pd.testing.assert_frame_equal(read_predictions(store.scoped("teams/red"), "MSFT"), predictions)
    assert len(client.search_model_versions("name = 'red-MSFT'")) == 2
