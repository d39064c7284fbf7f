"""Schedules, automation conditions and the failure sensor: a session runs through the instance."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from mlops_pipeline.assets.automation import build_team_schedule, record_run_failures
from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.defs_builder import MARKET_JOB, build_definitions
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.training.retrain_policy import FORCE, RETRAIN_TAG

NEW_YORK = ZoneInfo("America/New_York")
LAST_SESSION = date(2024, 6, 14)  # a Friday


@pytest.fixture(autouse=True)
def last_session(monkeypatch: pytest.MonkeyPatch) -> date:
    """Pin the last completed session (the sandbox market's today), so partitions do not follow the clock."""
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", LAST_SESSION.isoformat())
    return LAST_SESSION


def _defs() -> dg.Definitions:
    return build_definitions(load_platform(load_settings()))


def _tick(defs: dg.Definitions, name: str, moment: datetime) -> dg.ScheduleExecutionData:
    schedule = defs.resolve_schedule_def(name)
    repository = defs.get_repository_def()
    with dg.build_schedule_context(scheduled_execution_time=moment, repository_def=repository) as context:
        return schedule.evaluate_tick(context)


def _evening(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 17, 30, tzinfo=NEW_YORK)


def test_daily_schedule_launches_the_teams_market_data_for_the_session(project: Path) -> None:
    defs = _defs()
    schedule = defs.resolve_schedule_def("red_daily_schedule")
    assert schedule.cron_schedule == "30 17 * * 1-5"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == MARKET_JOB == "market_daily"

    requests = _tick(defs, "red_daily_schedule", _evening(date(2024, 3, 27))).run_requests
    assert requests is not None
    assert [str(request.partition_key) for request in requests] == [
        "2024-03-27|AAPL",
        "2024-03-27|MSFT",
        "2024-03-27|NVDA",
    ]
    assert [request.run_key for request in requests] == [
        "red-2024-03-27-AAPL",
        "red-2024-03-27-MSFT",
        "red-2024-03-27-NVDA",
    ]
    for request in requests:
        assert request.tags["mlops/team"] == "red"
        assert "mlops/as_of" not in request.tags  # the date is the partition key only
        assert request.job_name in (None, MARKET_JOB)
    market = defs.resolve_job_def(MARKET_JOB).partitions_def
    assert market is not None
    assert all(market.has_partition_key(request.partition_key) for request in requests)

    blue = _tick(defs, "blue_daily_schedule", _evening(date(2024, 3, 27))).run_requests
    assert [str(request.partition_key) for request in blue or []] == [
        "2024-03-27|AAPL",
        "2024-03-27|AMZN",
        "2024-03-27|TSLA",
    ]


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (date(2024, 3, 29), "Good Friday"),
        (date(2024, 7, 4), "July 4th"),
        (date(2024, 12, 25), "Christmas"),
        (date(2024, 6, 15), "weekend"),
    ],
)
def test_daily_schedule_skips_days_without_a_session_naming_the_holiday(
    project: Path, day: date, reason: str
) -> None:
    red = load_teams(project / "teams", project / "ludwig_configs")["red"]
    schedule = build_team_schedule(red, MARKET_JOB)
    with dg.build_schedule_context(scheduled_execution_time=_evening(day)) as context:
        result = schedule.evaluate_tick(context)
    assert not result.run_requests
    assert result.skip_message == f"{day} is not an NYSE trading day ({reason})"


def test_a_morning_schedule_launches_the_session_completed_before_it(project: Path) -> None:
    (project / "teams" / "red.yaml").write_text(
        "tickers: [MSFT]\nschedule: {daily_cron: '0 8 * * 1-5'}\n", encoding="utf-8"
    )
    defs = _defs()
    monday = datetime(2024, 4, 1, 8, 0, tzinfo=NEW_YORK)  # after Good Friday and the weekend
    requests = _tick(defs, "red_daily_schedule", monday).run_requests
    assert [str(request.partition_key) for request in requests or []] == ["2024-03-28|MSFT"]
    assert [request.run_key for request in requests or []] == ["red-2024-03-28-MSFT"]


def test_weekly_retrain_schedule_forces_training_per_ticker(project: Path) -> None:
    defs = _defs()
    schedule = defs.resolve_schedule_def("red_retrain_schedule")
    assert schedule.cron_schedule == "0 6 * * 6" and schedule.job_name == "red_train"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    saturday = datetime(2024, 3, 23, 6, 0, tzinfo=NEW_YORK)
    requests = _tick(defs, "red_retrain_schedule", saturday).run_requests
    assert requests is not None
    # Friday's session: the last one completed at the tick
    assert [str(request.partition_key) for request in requests] == [
        "2024-03-22|AAPL",
        "2024-03-22|MSFT",
        "2024-03-22|NVDA",
    ]
    assert [request.run_key for request in requests] == [
        f"red-retrain-2024-03-22-{ticker}" for ticker in ("AAPL", "MSFT", "NVDA")
    ]
    assert {request.tags[RETRAIN_TAG] for request in requests} == {FORCE}
    assert {request.tags["mlops/team"] for request in requests} == {"red"}
    assert all("mlops/as_of" not in request.tags for request in requests)
    train = defs.resolve_job_def("red_train").partitions_def
    assert train is not None and all(train.has_partition_key(request.partition_key) for request in requests)


def test_definitions_expose_schedules_per_team_and_the_sensors(project: Path) -> None:
    defs = _defs()
    schedules = {schedule.name: schedule for schedule in defs.schedules or []}
    assert set(schedules) == {
        "red_daily_schedule",
        "blue_daily_schedule",
        "red_retrain_schedule",
        "blue_retrain_schedule",
    }
    assert {schedules[f"{team}_daily_schedule"].job_name for team in ("red", "blue")} == {MARKET_JOB}
    assert "daily_loop" not in {job.name for job in defs.resolve_all_job_defs()}
    sensors = {sensor.name: sensor for sensor in defs.sensors or []}
    assert set(sensors) == {
        "record_run_failures",
        "session_automation",
        "red_retrain_on_monitoring",
        "blue_retrain_on_monitoring",
    }
    assert sensors["session_automation"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["record_run_failures"].default_status == dg.DefaultSensorStatus.RUNNING


def test_failed_team_run_is_recorded_under_the_team_prefix(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
    ensure_home(settings)
    defs = _defs()
    instance = dg.DagsterInstance.get()
    # No market data exists for the session, so red's dataset asset fails for AAPL.
    result = defs.resolve_job_def("red_train").execute_in_process(
        instance=instance, partition_key="2024-03-27|AAPL", raise_on_error=False
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    failure = next(
        event for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    store = object_store_from_settings(settings)
    context = dg.build_run_status_sensor_context(
        sensor_name="record_run_failures",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"object_store": store},
    ).for_run_failure()
    record_run_failures(context)
    assert store.list_keys("teams/red/failures") == [f"teams/red/failures/{run.run_id}.json"]
    record = json.loads(store.get_text(f"teams/red/failures/{run.run_id}.json"))
    assert set(record) == {"run_id", "job", "team", "partition", "error", "recorded_at"}  # no "as_of"
    assert (record["run_id"], record["team"], record["job"]) == (run.run_id, "red", "red_train")
    assert record["partition"] == "2024-03-27|AAPL"
    assert record["error"] == failure.message and "red__training_dataset" in record["error"]


# -- automation conditions: each stage of the latest session follows its inputs ---------------------

SESSION = LAST_SESSION.isoformat()


def _requested(result: dg.EvaluateAutomationConditionsResult, defs: dg.Definitions) -> dict[str, set[str]]:
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    requested = {key.to_user_string(): result.get_requested_partitions(key) for key in keys}
    return {
        name: {str(partition) for partition in partitions}
        for name, partitions in requested.items()
        if partitions
    }


class _Automation:
    """The automation conditions of ``defs`` evaluated tick after tick on an ephemeral instance, on
    the evening of the last session; materializations are reported directly (as the launched runs
    would record them), so nothing trains."""

    def __init__(self, defs: dg.Definitions) -> None:
        self.defs, self.instance, self.cursor = defs, dg.DagsterInstance.ephemeral(), None
        self.evening = datetime(2024, 6, 14, 18, 0, tzinfo=NEW_YORK)

    def tick(self) -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, evaluation_time=self.evening, cursor=self.cursor
        )
        self.cursor = result.cursor
        return _requested(result, self.defs)

    def materialize(self, partition: str, *keys: str) -> None:
        for key in keys:
            asset_key = dg.AssetKey(key.split("/"))
            self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key, partition=partition))


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # raised inside dagster's own tester
def test_automation_conditions_launch_each_stage_once_its_inputs_exist(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real definitions, on a short range of sessions."""
    monkeypatch.setenv("MLOPS_SESSIONS_START", "2024-06-03")
    (project / "teams" / "red.yaml").write_text("tickers: [AAPL, MSFT]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").unlink()
    automation = _Automation(_defs())
    tick, materialize = automation.tick, automation.materialize

    assert tick() == {}  # nothing before the schedule's market data
    materialize("2024-06-13|AAPL", "market/prices")
    assert tick() == {}  # an older session is not the latest: nothing follows it

    materialize(f"{SESSION}|AAPL", "market/prices")  # what red's daily schedule launches
    per_ticker = ("market/features", "red/training_dataset", "red/model", "red/champion")
    assert tick() == {name: {f"{SESSION}|AAPL"} for name in per_ticker}
    assert tick() == {}  # requested once

    materialize(f"{SESSION}|AAPL", *per_ticker)  # the launched run's materializations
    after_champion = tick()
    # a per-team stage: one partition per session; the backtest and the leaderboard wait for the
    # session's reconciliation instead of running at each champion update
    assert after_champion == {"red/serving": {SESSION}}

    materialize(SESSION, "red/serving")
    # MSFT has no market data: its predictions wait, AAPL's do not wait for it
    assert tick() == {"red/predictions": {f"{SESSION}|AAPL"}, "red/monitoring_report": {f"{SESSION}|AAPL"}}

    materialize(f"{SESSION}|AAPL", "red/predictions", "red/monitoring_report")
    assert tick() == {
        name: {SESSION} for name in ("red/orders", "red/reconciliation", "red/backtest", "leaderboard")
    }

    materialize(SESSION, "red/orders", "red/reconciliation", "red/backtest", "leaderboard")
    assert tick() == {}  # the session is done

    # Orders then the reconciliation (a sensor's run), then the same orders again (a click in the
    # UI), all between two ticks: the later orders are journaled, then backtested and ranked.
    materialize(SESSION, "red/orders", "red/reconciliation")
    materialize(SESSION, "red/orders")
    after_click = {name: {SESSION} for name in ("red/reconciliation", "red/backtest", "leaderboard")}
    assert tick() == after_click
    materialize(SESSION, "red/reconciliation", "red/backtest", "leaderboard")
    assert tick() == {}


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # raised inside dagster's own tester
def test_teams_on_other_tickers_than_the_market_follow_its_features_of_their_own_tickers(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The market data has every team's tickers, so each team's session x ticker assets depend on it
    across two different partition definitions (mapped dimension by dimension): a ticker's features
    start that ticker's stage of the teams that trade it, and no other."""
    monkeypatch.setenv("MLOPS_SESSIONS_START", "2024-06-03")
    (project / "teams" / "red.yaml").write_text("tickers: [AAPL, MSFT]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").write_text("tickers: [MSFT, TSLA]\n", encoding="utf-8")
    defs = _defs()
    graph = defs.resolve_asset_graph()
    features = dg.AssetKey(["market", "features"])
    for team in ("red", "blue"):
        mapping = graph.get_partition_mapping(dg.AssetKey([team, "training_dataset"]), features)
        assert isinstance(mapping, dg.MultiPartitionMapping), (team, mapping)
    automation = _Automation(defs)
    tick, materialize = automation.tick, automation.materialize

    assert tick() == {}
    for ticker in ("AAPL", "MSFT"):
        materialize(f"{SESSION}|{ticker}", "market/prices")
    # The features first: a team's assets are not in the market's partitions definition, so they
    # cannot run in the same run.
    assert tick() == {"market/features": {f"{SESSION}|AAPL", f"{SESSION}|MSFT"}}
    materialize(f"{SESSION}|MSFT", "market/features")
    per_ticker = ("training_dataset", "model", "champion")
    assert tick() == {
        f"{team}/{name}": {f"{SESSION}|MSFT"} for team in ("red", "blue") for name in per_ticker
    }
    materialize(f"{SESSION}|AAPL", "market/features")
    assert tick() == {f"red/{name}": {f"{SESSION}|AAPL"} for name in per_ticker}
