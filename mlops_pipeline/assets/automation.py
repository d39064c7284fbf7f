"""Schedules and sensors: the daily loop on NYSE trading days, and failure records per team.

The scheduled daily loop is the same code path as ``mlops run``: one ``daily_loop`` run calls
:func:`mlops_pipeline.orchestration.run_daily`, which launches the per-ticker runs in order
(market data first, then each team). Each team has its own schedule (its overlay's
``schedule.daily_cron`` and time zone); market data already fetched that day costs no request.
Cron alone does not know holidays: every tick is checked against the NYSE calendar and skipped
with the holiday named. Schedules start STOPPED; switch them on in the UI (Automation).
"""

import json
from datetime import date, datetime

import dagster as dg

from mlops_pipeline.assets.common import AS_OF_TAG, TEAM_TAG
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.calendar import holiday_name, is_trading_day, last_completed_trading_day
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.training.retrain_policy import FORCE, RETRAIN_TAG

DAILY_LOOP_JOB = "daily_loop"


class DailyLoopConfig(dg.Config):
    as_of: str | None = None  # YYYY-MM-DD; default: the last completed session
    teams: list[str] | None = None  # default: every team


@dg.op(description="Run the daily loop (market data, then each team) for one trading date.")
def run_daily_loop(context: dg.OpExecutionContext, config: DailyLoopConfig) -> dg.Output[int]:
    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.settings import load_settings
    from mlops_pipeline.config.teams import load_teams
    from mlops_pipeline.orchestration import run_daily

    settings = load_settings()
    ensure_home(settings)
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path, only=config.teams)
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    report = run_daily(settings, teams, as_of=as_of)
    runs = [
        {
            "job": run.job,
            "ticker": run.partition,
            "status": run.status,
            "run_id": run.run_id,
            "note": run.note,
        }
        for run in report.runs
    ]
    context.log.info(
        f"daily loop {report.as_of}: {report.total_count - report.failed_count}/{report.total_count} ok"
    )
    if not report.ok:
        raise dg.Failure(
            f"{report.failed_count} of {report.total_count} partition run(s) failed for {report.as_of}",
            metadata={"runs": dg.MetadataValue.json(runs)},
        )
    return dg.Output(
        report.total_count, metadata={"as_of": str(report.as_of), "runs": dg.MetadataValue.json(runs)}
    )


@dg.job(
    name=DAILY_LOOP_JOB, description="The daily loop: market data for every ticker, then each team's assets."
)
def daily_loop() -> None:
    run_daily_loop()


def skip_reason_for(day: date) -> str | None:
    """Why ``day`` has no session, or ``None`` when it is an NYSE trading day."""
    if is_trading_day(day):
        return None
    return f"{day} is not an NYSE trading day ({holiday_name(day) or 'weekend'})"


def build_team_schedule(team: TeamConfig) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{team.name}_daily_schedule",
        job=daily_loop,
        cron_schedule=team.schedule.daily_cron,
        execution_timezone=team.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={TEAM_TAG: team.name},
        description=f"Team {team.name}'s daily loop after the close, on NYSE trading days only.",
    )
    def team_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time
        day = tick.date() if isinstance(tick, datetime) else date.today()
        reason = skip_reason_for(day)
        if reason is not None:
            return dg.SkipReason(reason)
        return dg.RunRequest(
            run_key=f"{team.name}-{day.isoformat()}",
            run_config={
                "ops": {"run_daily_loop": {"config": {"as_of": day.isoformat(), "teams": [team.name]}}}
            },
            tags={AS_OF_TAG: day.isoformat(), TEAM_TAG: team.name},
        )

    return team_daily


def build_retrain_schedule(team: TeamConfig, train_job: str) -> dg.ScheduleDefinition:
    """Weekly retraining on the team's ``retrain.cron``: one forced training run per ticker, on the
    data of the last completed session. The daily loop does not retrain again for the same tick."""

    @dg.schedule(
        name=f"{team.name}_retrain_schedule",
        job_name=train_job,
        cron_schedule=team.retrain.cron,
        execution_timezone=team.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Team {team.name}: retrain every ticker's model ('{team.retrain.cron}').",
    )
    def team_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time
        as_of = last_completed_trading_day(
            tick if isinstance(tick, datetime) else datetime.now().astimezone()
        )
        return [
            dg.RunRequest(
                run_key=f"{team.name}-retrain-{as_of.isoformat()}-{ticker}",
                partition_key=ticker,
                tags={AS_OF_TAG: as_of.isoformat(), TEAM_TAG: team.name, RETRAIN_TAG: FORCE},
            )
            for ticker in team.tickers
        ]

    return team_retrain


@dg.run_failure_sensor(
    name="record_run_failures",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run under the team's prefix (teams/<team>/failures/), or platform/.",
)
def record_run_failures(context: dg.RunFailureSensorContext, object_store: ObjectStore) -> None:
    run = context.dagster_run
    team = run.tags.get(TEAM_TAG)
    record = {
        "run_id": run.run_id,
        "job": run.job_name,
        "team": team,
        "partition": run.tags.get("dagster/partition"),
        "as_of": run.tags.get(AS_OF_TAG),
        "error": context.failure_event.message,
        "recorded_at": datetime.now().astimezone().isoformat(),
    }
    prefix = f"teams/{team}/failures" if team else "platform/failures"
    object_store.put_text(f"{prefix}/{run.run_id}.json", json.dumps(record, indent=2))
