"""The backtest and leaderboard assets against a real (SQLite) MLflow registry and a local store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from _oos import oos_frame

from mlops_pipeline.assets.competition import (
    LEADERBOARD,
    backtest_key,
    build_competition_assets,
    build_leaderboard_assets,
)
from mlops_pipeline.assets.sessions import nyse_sessions
from mlops_pipeline.assets.training import CHAMPION_AFTER_GATE, NO_CHAMPION
from mlops_pipeline.competition.team_inputs import LEADERBOARD_HTML_KEY, LEADERBOARD_TABLE_KEY
from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.team_store import BACKTEST_CHART_KEY, BACKTEST_DAILY_KEY, session_backtest_key

SESSIONS = nyse_sessions(date(2024, 1, 2), date(2024, 3, 27))


def _register_champion(
    settings: PlatformSettings, team: str, ticker: str, frame: pd.DataFrame, tmp: Path
) -> None:
    from mlflow import MlflowClient

    uri = str(settings.mlflow_tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(team)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(team, artifact_location=f"{settings.mlflow_artifact_root}/{team}")
    )
    run = client.create_run(experiment_id, tags={"team": team, "ticker": ticker})
    local = tmp / "oos_predictions.parquet"
    frame.to_parquet(local)
    client.log_artifact(run.info.run_id, str(local), "evaluation")
    client.set_terminated(run.info.run_id)
    name = f"{team}-{ticker}"
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "champion", version.version)


def _oos(ticker: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2023-01-02", periods=120).strftime("%Y-%m-%d").tolist()
    return oos_frame(
        dates, ticker, rng.normal(0.0005, 0.01, 120).tolist(), rng.normal(0.002, 0.004, 120).tolist()
    )


def test_backtest_and_leaderboard_assets(project: Path, tmp_path: Path) -> None:
    settings = load_settings()
    ensure_home(settings)
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    red = teams["red"]
    for seed, ticker in enumerate(["AAPL", "MSFT"]):  # NVDA has no champion yet
        _register_champion(settings, "red", ticker, _oos(ticker, seed), tmp_path)

    assets = build_competition_assets(red, settings, SESSIONS) + build_leaderboard_assets(teams, SESSIONS)
    store = object_store_from_settings(settings)
    result = dg.materialize(
        assets,
        resources={"object_store": store},
        selection=[backtest_key("red"), LEADERBOARD],
        partition_key="2024-03-27",
    )
    assert result.success

    materialization = result.asset_materializations_for_node("red__backtest")[0]
    metadata = materialization.metadata
    assert metadata["team"].value == "red" and metadata["config_hash"].value == red.config_hash
    assert set(metadata["champions"].value) == {"AAPL", "MSFT"}
    assert "NVDA" in metadata["missing_tickers"].value
    assert metadata["equity_drawdown"].value.startswith("![equity and drawdown](data:image/png;base64,")
    assert metadata["period"].value == "2023-01-02..2023-06-16"
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "no_probable_leakage"

    red_store = store.scoped("teams/red")
    daily, manifest = red_store.get_parquet_with_manifest(BACKTEST_DAILY_KEY)
    assert len(daily) == 120 and manifest["summary"]["tickers"] == ["AAPL", "MSFT"]
    assert red_store.get_bytes(BACKTEST_CHART_KEY).startswith(b"\x89PNG")
    assert red_store.get_parquet(session_backtest_key(date(2024, 3, 27))).equals(daily)

    board = store.get_parquet(LEADERBOARD_TABLE_KEY)
    assert board["team"].tolist() == ["red", "blue"] or board["team"].tolist() == ["blue", "red"]
    red_row = board.set_index("team").loc["red"]
    assert red_row["backtest_return"] == pytest.approx(manifest["summary"]["total_return"])
    assert "data:image/png;base64," in store.get_text(LEADERBOARD_HTML_KEY)
    table = result.asset_materializations_for_node("leaderboard")[0].metadata["table"].value
    assert "| blue | no data yet |" in table  # blue has not traded or been backtested
    assert store.get_parquet("competition/leaderboards/2024-03-27.parquet").equals(board)


def test_backtest_without_any_champion_materializes_nothing(project: Path) -> None:
    settings = load_settings()
    ensure_home(settings)
    blue = load_teams(settings.teams_path, settings.ludwig_configs_path, only=["blue"])["blue"]
    result = dg.materialize(
        build_competition_assets(blue, settings, SESSIONS),
        resources={"object_store": object_store_from_settings(settings)},
        partition_key="2024-03-27",
        raise_on_error=False,
    )
    assert result.success  # no champion yet is a normal state, not a fault
    assert not result.get_asset_materialization_events()
    (check,) = result.get_asset_check_evaluations()
    assert check.metadata["not_evaluated"].value == "no champion yet"
    assert not object_store_from_settings(settings).exists(f"teams/blue/{BACKTEST_DAILY_KEY}")


def test_a_session_backtests_its_own_champions_and_ranks_as_it_stood_then(
    project: Path, tmp_path: Path
) -> None:
    """Backtesting an earlier session again uses the champion its gate left, not today's, and
    leaves the current backtest alone; that session's leaderboard ranks what was known then."""
    settings = load_settings()
    ensure_home(settings)
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    red = teams["red"]
    _register_champion(settings, "red", "AAPL", _oos("AAPL", 1), tmp_path)  # v1
    _register_champion(settings, "red", "AAPL", _oos("AAPL", 2), tmp_path)  # v2, the champion now
    instance = dg.DagsterInstance.ephemeral()
    for session, aapl, msft in (("2024-03-26", "1", NO_CHAMPION), ("2024-03-27", "2", NO_CHAMPION)):
        for ticker, version in (("AAPL", aapl), ("MSFT", msft)):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey(["red", "champion"]),
                    partition=f"{session}|{ticker}",
                    metadata={CHAMPION_AFTER_GATE: version},
                )
            )
    store = object_store_from_settings(settings)
    red_store = store.scoped("teams/red")
    red_store.put_parquet(
        "journal/equity.parquet",
        pd.DataFrame(
            {
                "date": pd.to_datetime(["2024-03-26", "2024-03-27"]),
                "equity": [101_000.0, 99_000.0],
                "cash": [0.0, 0.0],
                "long_market_value": [101_000.0, 99_000.0],
                "return_since_start": [0.01, -0.01],
            }
        ),
    )
    assets = build_competition_assets(red, settings, SESSIONS) + build_leaderboard_assets(teams, SESSIONS)

    def materialize(session: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets,
            instance=instance,
            resources={"object_store": store},
            selection=[backtest_key("red"), LEADERBOARD],
            partition_key=session,
        )

    materialize("2024-03-27")
    current = red_store.get_parquet(BACKTEST_DAILY_KEY)
    earlier = materialize("2024-03-26").asset_materializations_for_node("red__backtest")[0].metadata

    assert earlier["champions"].value["AAPL"]["version"] == "1"
    assert "no champion after the promotion gate of 2024-03-26" in earlier["missing_tickers"].value["MSFT"]
    old, manifest = red_store.get_parquet_with_manifest(session_backtest_key(date(2024, 3, 26)))
    new = red_store.get_parquet(session_backtest_key(date(2024, 3, 27)))
    assert manifest["champions"]["AAPL"]["version"] == "1" and not old.equals(new)
    assert red_store.get_parquet(BACKTEST_DAILY_KEY).equals(current) and current.equals(new)

    board = store.get_parquet("competition/leaderboards/2024-03-26.parquet").set_index("team")
    assert board.loc["red", "backtest_return"] == pytest.approx(manifest["summary"]["total_return"])
    assert board.loc["red", "paper_equity"] == 101_000.0  # not the later session's 99,000
    assert store.get_parquet(LEADERBOARD_TABLE_KEY).set_index("team").loc["red", "paper_equity"] == 99_000.0
