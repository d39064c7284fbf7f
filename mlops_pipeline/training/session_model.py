"""A session's model for one ticker: refuse, wait, keep the current model, or train a new one.

:func:`session_model` holds every decision of the ``<team>/model`` asset; the asset only reads its
inputs and turns the typed outcome into metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.config.ludwig import LudwigConfigFile
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.training.dataset import frame_fingerprint
from mlops_pipeline.training.folds import history_shortfall
from mlops_pipeline.training.pipeline import TrainingOutcome, train_ticker, training_config_hash
from mlops_pipeline.training.retrain_policy import (
    COVERED_UNTIL_TAG,
    FORCE,
    RETRAIN_TAG,
    covered_until,
    previous_training,
    retrain_decision,
)
from mlops_pipeline.training.tracking import Tracker
from mlops_pipeline.training.versioning import DvcStore


@dataclass(frozen=True)
class NotRetrained:
    """The retrain policy keeps the current model."""

    reason: str
    run_id: str
    model_version: str


@dataclass(frozen=True)
class Trained:
    """A training ran, or found a run for exactly this data and config (``outcome.skipped``)."""

    outcome: TrainingOutcome
    retrain_reason: str


SessionModel = Refused | Skipped | NotRetrained | Trained  # Skipped: the history is still too short


def session_model(
    team: TeamConfig,
    ticker: str,
    as_of: date,
    dataset: pd.DataFrame,
    manifest: dict[str, Any],
    features: pd.DataFrame,
    ludwig: LudwigConfigFile,
    tracker: Tracker,
    dvc: Callable[[], DvcStore],
    run_tags: dict[str, str],
    progress: Callable[[str], None],
) -> SessionModel:
    """Decide and, when due, train the session's model of ``ticker``; ``manifest`` is the stored
    dataset's. Raises the tracking, versioning, dataset and fold errors of a training."""
    if manifest.get("ludwig_config") != team.model.ludwig_config:
        return Refused(
            f"the dataset was built for {manifest.get('ludwig_config')!r}, the team now uses "
            f"{team.model.ludwig_config!r}: materialize training_dataset again"
        )
    shortfall = history_shortfall(len(dataset), team.evaluation, as_of)
    if shortfall is not None:
        return Skipped(f"team {team.name}, {ticker}: {shortfall}")
    latest = tracker.latest_trained_run(team.name, ticker)
    decision = retrain_decision(
        cron=team.retrain.cron,
        timezone=team.schedule.timezone,
        previous=previous_training(latest.data.tags, latest.data.params) if latest else None,
        config_hash=training_config_hash(team, ludwig),
        as_of=as_of,
        forced=run_tags.get(RETRAIN_TAG) == FORCE,
    )
    if not decision.due:
        assert latest is not None
        return NotRetrained(decision.reason, latest.info.run_id, latest.data.tags.get("model_version", ""))
    outcome = train_ticker(
        team,
        ticker,
        dataset,
        str(manifest.get("data_version") or frame_fingerprint(dataset)),
        features,
        ludwig,
        tracker,
        dvc(),
        run_tags={COVERED_UNTIL_TAG: covered_until(as_of, run_tags).isoformat()},
        progress=progress,
    )
    return Trained(outcome, decision.reason)
