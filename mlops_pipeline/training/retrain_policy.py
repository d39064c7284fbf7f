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
LAST_ROW = "data.last_date"  # run param and model-version tag: the date of the last training row


def trained_after(last_row: date, session: date) -> bool:
    """Whether a model whose last training row is ``last_row`` was trained for a later session than
    ``session``. A row's target is the next session's close, so such a model has seen a close after
    ``session``: a past session neither retrains over it nor runs its promotion gate."""
    return last_row >= session


@dataclass(frozen=True)
class RetrainDecision:
    due: bool
    reason: str


@dataclass(frozen=True)
class PreviousTraining:
    """The newest trained model of a ticker: until when it counts as current, its config hash and
    the date of its last training row."""

    covered_until: datetime
    config_hash: str
    last_row: date


def previous_training(run_tags: dict[str, str], run_params: dict[str, str]) -> PreviousTraining:
    """Read :class:`PreviousTraining` from an MLflow run (older runs: from their training window)."""
    last_row = date.fromisoformat(run_params[LAST_ROW])
    covered = run_tags.get(COVERED_UNTIL_TAG)
    covered_until = datetime.fromisoformat(covered) if covered else session_close(next_trading_day(last_row))
    return PreviousTraining(covered_until, run_tags.get("config_hash", ""), last_row)


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
    if trained_after(previous.last_row, as_of):
        return RetrainDecision(
            False,
            f"the current model was trained for a later session (its data runs to {previous.last_row}): "
            f"{as_of} is a past session, which never retrains, even when asked to",
        )
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
