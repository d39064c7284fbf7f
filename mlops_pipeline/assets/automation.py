"""Schedules, automation conditions and sensors: a team's session runs through the instance.

A team's daily schedule (its overlay's ``schedule.daily_cron`` and time zone) launches the shared
market data of its tickers for the session just completed, one partitioned run per ticker. Each
later stage carries an automation condition, and the ``session_automation`` sensor launches it as
soon as its upstream partitions of the latest session are materialized: per-ticker stages once
their ticker's inputs exist, per-team stages (serving, orders, reconciliation, backtest, the
leaderboard) once their inputs updated and nothing upstream is still running. Cron alone does not
know holidays: a tick on a day without a session is skipped with the holiday named. Schedules
start STOPPED; switch them on in the UI (Automation).
"""

import json
from datetime import date, datetime

import dagster as dg

from mlops_pipeline.assets.common import TEAM_TAG
from mlops_pipeline.assets.sessions import session_ticker_key
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.calendar import holiday_name, is_trading_day, last_completed_trading_day
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import run_failure_key, team_store
from mlops_pipeline.training.retrain_policy import FORCE, RETRAIN_TAG


def in_latest_session(condition: dg.AutomationCondition) -> dg.AutomationCondition:
    """``condition`` evaluated on the latest session's partitions only.

    Dagster evaluates the operand of ``newly_true`` and ``since`` on every partition of the asset,
    whatever the conditions around them select: on sessions since 2020 that means every partition
    key (thousands of session x ticker keys) enumerated, mapped to each input and stored in the
    sensor's cursor on every tick. Inside them, this selection comes first, so the rest sees one
    session."""
    return dg.AutomationCondition.in_latest_time_window() & condition


# A per-ticker stage: once every input partition of its session and ticker exists (Dagster's eager
# condition, its state kept for the latest session only).
PER_TICKER_STAGE = (
    dg.AutomationCondition.eager()
    .replace("newly_missing", in_latest_session(dg.AutomationCondition.missing()).newly_true())
    .replace("any_deps_updated", in_latest_session(dg.AutomationCondition.any_deps_updated()))
)


def per_team_stage(*ignored: dg.AssetKey) -> dg.AutomationCondition:
    """A per-team stage: once its inputs (other than ``ignored``) updated and none is running; an
    input that never comes (a ticker waiting for history, a failed ticker) does not hold back the
    team's other tickers.

    "Updated" means an input materialized after this asset's last materialization and after its last
    request, decided by the events' timestamps: a second orders run that lands after the
    reconciliation which followed the first, both between two sensor ticks, still journals the
    session again, while the inputs a run made before this asset in that same run do not ask for it
    again. A request whose run fails or materializes nothing is not repeated for inputs it already
    saw (one made together with its inputs' request is repeated once)."""

    def deps_match(condition: dg.AutomationCondition) -> dg.AutomationCondition:
        matched = dg.AutomationCondition.any_deps_match(condition)
        if ignored:
            matched = matched.ignore(dg.AssetSelection.assets(*sorted(ignored, key=lambda key: key.path)))
        return matched

    # Bare operands keep the events' timestamps (boolean operators drop them): ``since`` needs both.
    updated = deps_match(dg.AutomationCondition.newly_updated())
    after_handled = updated.since(dg.AutomationCondition.newly_updated()) & updated.since(
        dg.AutomationCondition.newly_requested()
    )
    return (
        dg.AutomationCondition.in_latest_time_window()
        & (after_handled | deps_match(dg.AutomationCondition.will_be_requested()))
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after its inputs")


PER_TEAM_STAGE = per_team_stage()


# The daemon's asset daemon checks automation-condition sensors once per loop of 5 s, and skips one
# whose minimum interval has not quite elapsed: a loop that comes a moment early (the previous check
# started a little later in its loop) waits a whole loop more, so a minimum of 5 s evaluated every
# 5 or 10 s.
DAEMON_LOOP_S = 5


def minimum_interval_s(interval_s: int) -> int:
    """The sensor's minimum interval that has the daemon evaluate it every ``interval_s`` seconds,
    rounded down to a whole number of its loops: 2 s less, so that a loop that comes up to 2 s early
    still evaluates it."""
    loops = max(1, interval_s // DAEMON_LOOP_S)
    return loops * DAEMON_LOOP_S - DAEMON_LOOP_S // 2


def automation_sensor(interval_s: int) -> dg.AutomationConditionSensorDefinition:
    """The sensor that launches every stage by its automation condition, evaluated every
    ``interval_s`` seconds (the ``MLOPS_AUTOMATION_INTERVAL_S`` setting, rounded down to a multiple
    of the daemon's 5 s loop): the longest a stage waits after its inputs are in, while the daemon
    keeps up. Each evaluation reads the whole graph's latest events in the daemon."""
    return dg.AutomationConditionSensorDefinition(
        "session_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=minimum_interval_s(interval_s),
        description="Launches each stage of the latest session once its inputs are materialized.",
    )


def skip_reason_for(day: date) -> str | None:
    """Why ``day`` has no session, or ``None`` when it is an NYSE trading day."""
    if is_trading_day(day):
        return None
    return f"{day} is not an NYSE trading day ({holiday_name(day) or 'weekend'})"


def _tick_time(context: dg.ScheduleEvaluationContext) -> datetime:
    tick = context.scheduled_execution_time
    return tick if isinstance(tick, datetime) else datetime.now().astimezone()


def build_team_schedule(team: TeamConfig, market_job: str) -> dg.ScheduleDefinition:
    """The team's daily schedule: market data of its tickers for the session completed at the tick."""

    @dg.schedule(
        name=f"{team.name}_daily_schedule",
        job_name=market_job,
        cron_schedule=team.schedule.daily_cron,
        execution_timezone=team.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={TEAM_TAG: team.name},
        description=f"Team {team.name}'s session after the close, on NYSE trading days only: its "
        "tickers' market data, then every stage by its automation condition.",
    )
    def team_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        tick = _tick_time(context)
        reason = skip_reason_for(tick.date())
        if reason is not None:
            return dg.SkipReason(reason)
        session = last_completed_trading_day(tick)
        return [
            dg.RunRequest(
                run_key=f"{team.name}-{session.isoformat()}-{ticker}",
                partition_key=session_ticker_key(session, ticker),
                tags={TEAM_TAG: team.name},
            )
            for ticker in team.tickers
        ]

    return team_daily


def build_retrain_schedule(team: TeamConfig, train_job: str) -> dg.ScheduleDefinition:
    """Weekly retraining on the team's ``retrain.cron``: one forced training run per ticker, on the
    last session completed at the tick."""

    @dg.schedule(
        name=f"{team.name}_retrain_schedule",
        job_name=train_job,
        cron_schedule=team.retrain.cron,
        execution_timezone=team.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Team {team.name}: retrain every ticker's model ('{team.retrain.cron}').",
    )
    def team_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        session = last_completed_trading_day(_tick_time(context))
        return [
            dg.RunRequest(
                run_key=f"{team.name}-retrain-{session.isoformat()}-{ticker}",
                partition_key=session_ticker_key(session, ticker),
                tags={TEAM_TAG: team.name, RETRAIN_TAG: FORCE},
            )
            for ticker in team.tickers
        ]

    return team_retrain


@dg.run_failure_sensor(
    name="record_run_failures",
    monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run under the team's prefix (teams/<team>/failures/), or platform/.",
)
def record_run_failures(context: dg.RunFailureSensorContext, object_store: ObjectStore) -> None:
    run = context.dagster_run
    team = run.tags.get(TEAM_TAG) or _team_of(run.asset_selection or set())
    record = {
        "run_id": run.run_id,
        "job": run.job_name,
        "team": team,
        "partition": run.tags.get("dagster/partition"),
        "error": context.failure_event.message,
        "recorded_at": datetime.now().astimezone().isoformat(),
    }
    store = team_store(object_store, team) if team else object_store.scoped("platform")
    store.put_text(run_failure_key(run.run_id), json.dumps(record, indent=2))


def _team_of(asset_keys: set[dg.AssetKey]) -> str | None:
    """The team whose assets a run materialized (runs the automation sensor launches carry no team
    tag); ``None`` for shared assets or several teams."""
    prefixes = {key.path[0] for key in asset_keys if len(key.path) > 1}
    if len(prefixes) != 1:
        return None
    (prefix,) = prefixes
    return None if prefix == "market" else prefix
