"""The stages of a session, as plain data (the command line lists them without loading Dagster).

``market`` fetches the shared market data, each team then runs ``train``, ``serve``, ``predict``
and ``trade``, and ``rank`` ranks every team.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeamStage:
    """One step of a team's session: the job suffix, its assets, and whether it is per ticker."""

    suffix: str
    assets: tuple[str, ...]
    per_ticker: bool
    description: str


TEAM_STAGES: tuple[TeamStage, ...] = (
    TeamStage("train", ("training_dataset", "model", "champion"), True, "dataset, model and promotion gate"),
    TeamStage("serve", ("serving",), False, "deploy the champion models"),
    TeamStage("predict", ("predictions", "monitoring_report"), True, "predictions and monitoring"),
    TeamStage("trade", ("orders", "reconciliation", "backtest"), False, "orders, reconciliation, backtest"),
)

STAGES: tuple[str, ...] = ("market", *(stage.suffix for stage in TEAM_STAGES), "rank")


def team_job_name(team: str, stage: TeamStage) -> str:
    return f"{team}_{stage.suffix}"
