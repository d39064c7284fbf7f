"""The shipped overlays play: one session on the sandbox gives every team a champion for every
ticker (by the bootstrap rule where no model beats the naive forecast) and at least one order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.serving.predictions import read_predictions
from mlops_pipeline.session_runner import run_session

pytestmark = pytest.mark.integration
SESSION = date(2024, 6, 14)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    running = start_sandbox_thread(SandboxConfig(today=SESSION, broker_db=tmp_path / "broker.sqlite"))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", running.base_url)
    monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")
    try:
        yield running.base_url
    finally:
        running.stop()


@pytest.mark.usefixtures("sandbox")
def test_every_shipped_team_has_a_champion_for_every_ticker_and_trades(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
    ensure_home(settings)
    platform = load_platform(settings)
    assert set(platform.teams) == {path.stem for path in (project / "teams").glob("*.yaml")} - {"base"}

    report = run_session(platform, SESSION)
    assert report.ok, [(run.job, run.partition, run.note) for run in report.runs if run.status != "success"]

    client = MlflowClient(settings.mlflow_tracking_uri)
    store = object_store_from_settings(settings)
    below_naive: dict[str, list[str]] = {}
    for name, team in platform.teams.items():
        for ticker in team.tickers:
            champion = client.get_model_version_by_alias(f"{name}-{ticker}", "champion")
            if champion.tags["promotion.below_naive"] == "True":
                below_naive.setdefault(name, []).append(ticker)
        orders = store.get_parquet(f"teams/{name}/journal/orders.parquet")
        team_store = store.scoped(f"teams/{name}")
        predictions = {ticker: read_predictions(team_store, ticker) for ticker in team.tickers}
        assert len(orders) >= 1, f"team {name} placed no order on {SESSION}: {predictions}"
    leaderboard = store.get_parquet("competition/leaderboard.parquet").set_index("team")
    for name in platform.teams:
        flagged = [
            key.split("-", 1)[1] for key, below in below_naive.items() if key.startswith(f"{name}-") and below
        ]
        if flagged:  # a bootstrap champion is never hidden
            assert f"below naive: {', '.join(sorted(flagged))}" in leaderboard.loc[name, "flags"]
