from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from mlops_pipeline.assets.automation import build_team_schedule, record_run_failures
from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.defs_builder import build_definitions
from mlops_pipeline.resources.object_store import object_store_from_settings

NEW_YORK = ZoneInfo("America/New_York")


def _tick(schedule: dg.ScheduleDefinition, day: date):
    moment = datetime(day.year, day.month, day.day, 17, 30, tzinfo=NEW_YORK)
    with dg.build_schedule_context(scheduled_execution_time=moment) as context:
        return schedule.evaluate_tick(context)


def test_schedule_runs_on_trading_days_and_names_holidays(project: Path) -> None:
    red = load_teams(project / "teams", project / "ludwig_configs")["red"]
    schedule = build_team_schedule(red)
    assert schedule.cron_schedule == "30 17 * * 1-5"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED

    (request,) = _tick(schedule, date(2024, 3, 27)).run_requests
    assert request.run_key == "red-2024-03-27"
    assert request.tags["mlops/as_of"] == "2024-03-27"
    assert request.run_config["ops"]["run_daily_loop"]["config"] == {"as_of": "2024-03-27", "teams": ["red"]}

    for holiday, name in ((date(2024, 3, 29), "Good Friday"), (date(2024, 7, 4), "July 4th")):
        result = _tick(schedule, holiday)
        assert not result.run_requests
        assert result.skip_message == f"{holiday} is not an NYSE trading day ({name})"


def test_definitions_expose_schedules_per_team_and_the_failure_sensor(project: Path) -> None:
    defs = build_definitions(load_settings())
    names = {schedule.name for schedule in defs.schedules or []}
    assert names == {
        "red_daily_schedule",
        "blue_daily_schedule",
        "red_retrain_schedule",
        "blue_retrain_schedule",
    }
    assert defs.resolve_job_def("daily_loop") is not None
    assert {sensor.name for sensor in defs.sensors or []} == {
        "record_run_failures",
        "red_retrain_on_monitoring",
        "blue_retrain_on_monitoring",
    }


def test_failed_team_run_is_recorded_under_the_team_prefix(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
    ensure_home(settings)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    # No market data exists yet, so red's dataset asset fails for AAPL.
    result = defs.resolve_job_def("red_train").execute_in_process(
        instance=instance, partition_key="AAPL", raise_on_error=False
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
    record = json.loads(store.get_text(f"teams/red/failures/{run.run_id}.json"))
    assert record["team"] == "red" and record["job"] == "red_train" and record["partition"] == "AAPL"


def test_weekly_retrain_schedule_forces_training_per_ticker(project: Path) -> None:
    defs = build_definitions(load_settings())
    schedule = defs.resolve_schedule_def("red_retrain_schedule")
    assert schedule.cron_schedule == "0 6 * * 6" and schedule.job_name == "red_train"
    saturday = datetime(2024, 3, 23, 6, 0, tzinfo=NEW_YORK)
    repository = defs.get_repository_def()
    with dg.build_schedule_context(scheduled_execution_time=saturday, repository_def=repository) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [request.partition_key for request in requests] == ["AAPL", "MSFT", "NVDA"]
    assert {request.tags["mlops/retrain"] for request in requests} == {"force"}
    assert {request.tags["mlops/as_of"] for request in requests} == {"2024-03-22"}  # Friday's data
