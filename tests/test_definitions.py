from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from mlops_pipeline.assets.automation import (
    DAEMON_LOOP_S,
    PER_TEAM_STAGE,
    PER_TICKER_STAGE,
    automation_sensor,
    minimum_interval_s,
    per_team_stage,
)
from mlops_pipeline.assets.sessions import PREVIOUS_SESSION
from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.home import broker_account_pool, embedded_dagster_yaml
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.defs_builder import build_definitions

LAST_SESSION = date(2024, 6, 14)  # a Friday: the sandbox's today, so the last completed session


@pytest.fixture(autouse=True)
def sandbox_today(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the last completed session, so that the session partitions do not follow the real clock."""
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", LAST_SESSION.isoformat())


def _defs() -> dg.Definitions:
    return build_definitions(load_platform(load_settings()))


def _keys(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


def _dimensions(partitions: dg.PartitionsDefinition | None) -> dict[str, dg.PartitionsDefinition]:
    assert isinstance(partitions, dg.MultiPartitionsDefinition), partitions
    return {dimension.name: dimension.partitions_def for dimension in partitions.partitions_defs}


TEAM_ASSETS = (
    "training_dataset", "model", "champion", "serving", "predictions", "monitoring_report",
    "orders", "reconciliation", "backtest",
)  # fmt: skip
PER_TICKER = ("training_dataset", "model", "champion", "predictions", "monitoring_report")
PER_SESSION = ("serving", "orders", "reconciliation", "backtest")


def test_two_default_teams(project: Path) -> None:
    defs = _defs()
    expected = {"market/prices", "market/features", "leaderboard"}
    expected |= {f"{team}/{name}" for team in ("red", "blue") for name in TEAM_ASSETS}
    assert _keys(defs) == expected
    graph = defs.resolve_asset_graph()
    market = _dimensions(graph.get(dg.AssetKey(["market", "prices"])).partitions_def)
    assert list(market) == ["session", "ticker"]
    assert market["ticker"].get_partition_keys() == [
        "AAPL",
        "AMZN",
        "MSFT",
        "NVDA",
        "TSLA",
    ]  # union, each once
    sessions = market["session"].get_partition_keys()
    assert (sessions[0], sessions[-1]) == ("2020-01-02", "2024-06-14")  # MLOPS_SESSIONS_START to the last
    assert "2024-03-29" not in sessions and "2024-06-15" not in sessions  # Good Friday, a Saturday
    red = _dimensions(graph.get(dg.AssetKey(["red", "training_dataset"])).partitions_def)
    assert red["ticker"].get_partition_keys() == ["AAPL", "MSFT", "NVDA"]
    assert red["session"] == market["session"]
    for team in ("red", "blue"):
        for stage in ("train", "serve", "predict", "trade"):
            job = defs.resolve_job_def(f"{team}_{stage}")
            assert job.tags["mlops/team"] == team
    per_ticker = _dimensions(defs.resolve_job_def("red_predict").partitions_def)
    assert per_ticker["ticker"].get_partition_keys() == ["AAPL", "MSFT", "NVDA"]
    assert defs.resolve_job_def("red_trade").partitions_def == market["session"]  # one run per session
    assert _dimensions(defs.resolve_job_def("market_daily").partitions_def)["ticker"] == market["ticker"]
    assert defs.resolve_job_def("rank_teams").partitions_def == market["session"]
    checks = {key.name for key in graph.asset_check_keys}
    assert {"freshness", "trading_days", "point_in_time", "targets"} <= checks
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert "daily_loop" not in names


def test_every_date_dependent_asset_is_a_session_partition(project: Path) -> None:
    graph = _defs().resolve_asset_graph()
    sessions = _dimensions(graph.get(dg.AssetKey(["market", "prices"])).partitions_def)["session"]
    for team in ("red", "blue"):
        for name in PER_TICKER:
            dimensions = _dimensions(graph.get(dg.AssetKey([team, name])).partitions_def)
            assert dimensions["session"] == sessions, (team, name)
        for name in PER_SESSION:
            assert graph.get(dg.AssetKey([team, name])).partitions_def == sessions, (team, name)
    assert graph.get(dg.AssetKey(["leaderboard"])).partitions_def == sessions


def test_orders_and_reconciliation_depend_on_their_previous_session(project: Path) -> None:
    graph = _defs().resolve_asset_graph()
    for name in ("orders", "reconciliation"):
        key = dg.AssetKey(["red", name])
        assert key in graph.get(key).parent_keys
        assert graph.get_partition_mapping(key, key) == PREVIOUS_SESSION
        sessions = graph.get(key).partitions_def
        upstream = PREVIOUS_SESSION.get_upstream_mapped_partitions_result_for_partitions(
            sessions.subset_with_partition_keys(["2024-04-01"]), sessions, sessions
        )
        assert list(upstream.partitions_subset.get_partition_keys()) == ["2024-03-28"]  # Good Friday skipped


def test_each_teams_account_steps_share_its_pool_of_one(project: Path) -> None:
    """Whoever launched the run, one step at a time trades on or journals a team's account."""
    defs = _defs()
    for team in ("red", "blue"):
        pools = {
            defs.resolve_assets_def(dg.AssetKey([team, name])).op.pool
            for name in ("orders", "reconciliation")
        }
        assert pools == {broker_account_pool(team)} == {f"broker_account_{team}"}
    assert embedded_dagster_yaml(project)["concurrency"]["pools"]["default_limit"] == 1


def test_stages_after_market_data_carry_automation_conditions(project: Path) -> None:
    defs = _defs()
    graph = defs.resolve_asset_graph()

    def condition(*path: str) -> dg.AutomationCondition | None:
        return graph.get(dg.AssetKey(list(path))).automation_condition

    assert condition("market", "prices") is None  # launched by the teams' daily schedules
    assert condition("market", "features") == PER_TICKER_STAGE
    for team in ("red", "blue"):
        for name in PER_TICKER:
            assert condition(team, name) == PER_TICKER_STAGE, (team, name)
        for name in ("serving", "orders", "reconciliation"):
            assert condition(team, name) == PER_TEAM_STAGE, (team, name)
        assert condition(team, "backtest") == per_team_stage(dg.AssetKey([team, "champion"]))
    assert condition("leaderboard") == per_team_stage(
        *(dg.AssetKey([team, "backtest"]) for team in ("red", "blue"))
    )
    sensors = {sensor.name: sensor for sensor in defs.sensors or []}
    automation = sensors["session_automation"]
    assert isinstance(automation, dg.AutomationConditionSensorDefinition)
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation.minimum_interval_seconds == minimum_interval_s(30)


def test_the_automation_sensors_interval_is_a_setting(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AUTOMATION_INTERVAL_S", "5")
    sensors = {sensor.name: sensor for sensor in _defs().sensors or []}
    assert sensors["session_automation"].minimum_interval_seconds == minimum_interval_s(5)
    monkeypatch.setenv("MLOPS_AUTOMATION_INTERVAL_S", "4")  # under the daemon's own loop of 5 s
    with pytest.raises(ValueError, match="automation_interval_s"):
        _defs()


@pytest.mark.parametrize("interval_s", [5, 7, 10, 30, 3600])
def test_the_daemon_evaluates_the_automation_sensor_at_its_interval_not_a_loop_later(interval_s: int) -> None:
    from dagster._core.definitions.sensor_definition import SensorType
    from dagster._daemon.asset_daemon import MIN_INTERVAL_LOOP_SECONDS

    sensor = automation_sensor(interval_s)
    assert sensor.sensor_type == SensorType.AUTO_MATERIALIZE  # evaluated by the asset daemon,
    assert DAEMON_LOOP_S == MIN_INTERVAL_LOOP_SECONDS  # which checks such sensors once per loop
    minimum = sensor.minimum_interval_seconds
    # The daemon skips a sensor while less than its minimum interval has elapsed since its last
    # evaluation. Each check starts up to a second or two earlier or later within its loop.
    loops = interval_s // DAEMON_LOOP_S  # the most whole loops within the interval
    assert loops * DAEMON_LOOP_S - 2 >= minimum, "a check slightly early would wait a whole loop more"
    assert (loops - 1) * DAEMON_LOOP_S + 2 < minimum, "evaluated more often than the interval"


def test_the_sessions_end_at_the_last_completed_session(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-06-16")  # a Sunday: Friday was the last session
    monkeypatch.setenv("MLOPS_SESSIONS_START", "2024-06-01")  # a Saturday: the first session is Monday
    market = _defs().resolve_asset_graph().get(dg.AssetKey(["market", "features"])).partitions_def
    sessions = _dimensions(market)["session"].get_partition_keys()
    assert sessions == [f"2024-06-{day:02d}" for day in (3, 4, 5, 6, 7, 10, 11, 12, 13, 14)]


def test_a_third_team_needs_only_a_file(project: Path) -> None:
    (project / "teams" / "green.yaml").write_text("tickers: [IBM, AAPL]\n", encoding="utf-8")
    defs = _defs()
    assert {f"green/{name}" for name in TEAM_ASSETS} <= _keys(defs)
    market = _dimensions(defs.resolve_asset_graph().get(dg.AssetKey(["market", "prices"])).partitions_def)
    assert "IBM" in market["ticker"].get_partition_keys()
    green = _dimensions(defs.resolve_job_def("green_train").partitions_def)
    assert green["ticker"].get_partition_keys() == ["IBM", "AAPL"]
    assert defs.resolve_job_def("green_train").tags["mlops/team"] == "green"


def test_a_broken_overlay_fails_the_whole_load(project: Path) -> None:
    (project / "teams" / "blue.yaml").write_text(
        "tickers: [AAPL]\nrisk: {max_position_pct: 7}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"teams/blue.yaml: risk.max_position_pct: Input should be less"):
        _defs()


@pytest.mark.integration  # a fresh interpreter
def test_code_location_loads_without_heavy_imports_or_side_effects(project: Path, isolated_env: Path) -> None:
    probe = (
        "import os, sys, mlops_pipeline.definitions as d;"
        "heavy=[m for m in ('ludwig','torch','evidently','mlflow','transformers') if m in sys.modules];"
        "job=d.defs.resolve_job_def('rank_teams');"
        "print(len(d.defs.resolve_asset_graph().get_all_asset_keys()), heavy,"
        " job.partitions_def.get_last_partition_key(), os.environ.get('DAGSTER_HOME'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == f"{3 + 2 * len(TEAM_ASSETS)} [] {LAST_SESSION} None"
    assert not isolated_env.exists()  # loading wrote nothing: the CLI prepares the home


@pytest.mark.integration  # the dagster CLI in a subprocess
def test_dagster_cli_validates_the_code_location(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "mlops_pipeline.definitions"],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
