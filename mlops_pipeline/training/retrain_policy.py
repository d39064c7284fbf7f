"""When a ticker's model is retrained: on the team's retraining schedule, not on every new row.

New data arrives every session, so "data changed" alone would retrain every day. A model is
retrained when there is none yet, when the team's training config changed, when a run asks for
it (run tag ``mlops/retrain=force``: the weekly schedule, the drift sensor, a human in the UI),
or when the team's ``retrain.cron`` fired since the time the current model covers. That time is
the close of the session it was trained for, or the schedule tick that forced it; it is stored on
the MLflow run (tag ``retrain.covered_until``). Decisions use market time, so a replay of past
months retrains on the same weekly rhythm as live operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from mlops_pipeline.market.calendar import next_trading_day, session_close

RETRAIN_TAG = "mlops/retrain"
FORCE = "force"
COVERED_UNTIL_TAG = "retrain.covered_until"
SCHEDULED_TIME_TAG = "dagster/scheduled_execution_time"


@dataclass(frozen=True)
class RetrainDecision:
    due: bool
    reason: str


@dataclass(frozen=True)
class PreviousTraining:
    """The newest trained model of a ticker: until when it counts as current, and its config hash."""

    covered_until: datetime
    config_hash: str


def previous_training(run_tags: dict[str, str], run_params: dict[str, str]) -> PreviousTraining:
    """Read :class:`PreviousTraining` from an MLflow run (older runs: from their training window)."""
    covered = run_tags.get(COVERED_UNTIL_TAG)
    if covered:
        covered_until = datetime.fromisoformat(covered)
    else:
        covered_until = session_close(next_trading_day(date.fromisoformat(run_params["data.last_date"])))
    return PreviousTraining(covered_until, run_tags.get("config_hash", ""))


def covered_until(as_of: date, run_tags: dict[str, str]) -> datetime:
    """What a model trained now covers: the schedule tick that forced it, else the as-of close."""
    tick = run_tags.get(SCHEDULED_TIME_TAG)
    return datetime.fromisoformat(tick) if tick else session_close(as_of)


def retrain_decision(
    *,
    cron: str,
    timezone: str,
    previous: PreviousTraining | None,
    config_hash: str,
    as_of: date,
    forced: bool,
) -> RetrainDecision:
    if previous is None:
        return RetrainDecision(True, "no trained model yet")
    if forced:
        return RetrainDecision(True, f"requested by run tag {RETRAIN_TAG}={FORCE}")
    if previous.config_hash != config_hash:
        return RetrainDecision(True, f"training config changed ({previous.config_hash} -> {config_hash})")
    zone = ZoneInfo(timezone)
    fired = croniter(cron, previous.covered_until.astimezone(zone)).get_next(datetime)
    if fired <= session_close(as_of).astimezone(zone):
        return RetrainDecision(True, f"retrain schedule '{cron}' fired at {fired:%Y-%m-%d %H:%M %Z}")
    return RetrainDecision(
        False,
        f"current model covers until {previous.covered_until.astimezone(zone):%Y-%m-%d %H:%M %Z}; "
        f"next retrain at {fired:%Y-%m-%d %H:%M %Z} (schedule '{cron}')",
    )
