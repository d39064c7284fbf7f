"""Run the promotion gate for one team and ticker against the MLflow registry."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from mlops_pipeline.config.ludwig import LudwigConfigFile
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.model_registry import CHALLENGER, CHAMPION, registered_model_name
from mlops_pipeline.outcomes import Skipped
from mlops_pipeline.training.dataset import build_training_dataset
from mlops_pipeline.training.promotion import GateDecision, decide
from mlops_pipeline.training.retrain_policy import LAST_ROW, trained_after
from mlops_pipeline.training.tracking import LUDWIG_CONFIG_ARTIFACT, Tracker
from mlops_pipeline.training.walk_forward import cross_validate, evaluation_frame


class PromotionError(RuntimeError):
    """The gate cannot run (e.g. no challenger yet)."""


@dataclass(frozen=True)
class GateOutcome:
    model_name: str
    challenger_version: str
    champion_before: str | None
    champion_after: str | None
    decision: GateDecision | None
    note: str


def version_metrics(version) -> dict[str, float]:
    """Mean walk-forward metrics stored as ``metric.<name>`` tags on a model version."""
    return {
        key.removeprefix("metric."): float(value)
        for key, value in version.tags.items()
        if key.startswith("metric.")
    }


def run_gate(
    tracker: Tracker,
    team: TeamConfig,
    ticker: str,
    session: date,
    features: pd.DataFrame,
    ludwig_path: Path,
) -> GateOutcome | Skipped:
    """Decide on the current challenger in ``session`` (``features``: the session's); move
    ``champion`` only when it passes. A challenger trained for a later session is that session's to
    decide: Skipped, and nothing moves."""
    name = registered_model_name(team.name, ticker)
    aliases = tracker.aliases(name)
    challenger = aliases.get(CHALLENGER)
    if challenger is None:
        raise PromotionError(f"{name} has no {CHALLENGER!r} version: materialize the model first")
    challenger_version = tracker.version(name, challenger)
    last_row = date.fromisoformat(
        challenger_version.tags.get(LAST_ROW)
        or tracker.get_run(challenger_version.run_id).data.params[LAST_ROW]
    )
    if trained_after(last_row, session):
        return Skipped(
            f"{name} v{challenger} was trained for a later session (its data runs to {last_row}): "
            f"{session} is a past session, whose gate decides nothing"
        )
    champion = aliases.get(CHAMPION)
    if champion == challenger:
        return GateOutcome(
            name, challenger, champion, champion, None, f"v{challenger} is already the champion"
        )
    earlier = challenger_version.tags.get("promotion.reason")
    if earlier is not None:
        return GateOutcome(
            name, challenger, champion, champion, None, f"v{challenger} was already decided: {earlier}"
        )
    challenger_scores = version_metrics(challenger_version)
    champion_scores, note = None, "no champion yet"
    if champion is not None:
        champion_scores, note = champion_scores_on_same_folds(
            tracker, team, ticker, features, tracker.version(name, champion), challenger_version, ludwig_path
        )
    decision = decide(team.promotion, challenger_scores, champion_scores)
    tracker.tag_version(name, challenger, {**decision.as_tags(), "promotion.champion_scores": note})
    champion_after = champion
    if decision.promote:
        tracker.move_alias(name, CHAMPION, challenger, actor="promotion gate", reason=decision.reason)
        champion_after = challenger
    return GateOutcome(name, challenger, champion, champion_after, decision, note)


def champion_scores_on_same_folds(
    tracker: Tracker,
    team: TeamConfig,
    ticker: str,
    features: pd.DataFrame,
    champion_version,
    challenger_version,
    ludwig_path: Path,
) -> tuple[dict[str, float], str]:
    """The champion's recipe (its Ludwig config) scored on the challenger's data and folds.

    The same recipe on the same data and folds gives the same scores (fixed seeds), so a
    champion trained with the challenger's Ludwig config is scored as the challenger is.
    """
    with tempfile.TemporaryDirectory() as scratch:
        local = tracker.download(champion_version.run_id, LUDWIG_CONFIG_ARTIFACT, Path(scratch))
        champion_config = json.loads(local.read_text(encoding="utf-8"))
    champion_ludwig = LudwigConfigFile(path=ludwig_path.with_name("champion.yaml"), config=champion_config)
    challenger_run = tracker.get_run(challenger_version.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        local = tracker.download(challenger_version.run_id, LUDWIG_CONFIG_ARTIFACT, Path(scratch))
        challenger_config = json.loads(local.read_text(encoding="utf-8"))
    if champion_ludwig.digest == LudwigConfigFile(ludwig_path, challenger_config).digest:
        return version_metrics(challenger_version), (
            f"champion v{champion_version.version} uses the same Ludwig config: same scores on these folds"
        )
    params = challenger_run.data.params
    first, last = pd.Timestamp(params["data.first_date"]), pd.Timestamp(params[LAST_ROW])
    dataset = build_training_dataset(features, champion_ludwig, None)
    dataset = dataset[(dataset["date"] >= first) & (dataset["date"] <= last)].reset_index(drop=True)
    if len(dataset) != int(params["data.rows"]):
        return {}, f"champion's inputs cover {len(dataset)} of the {params['data.rows']} challenger rows"
    scores = cross_validate(evaluation_frame(dataset, features), champion_ludwig, team.evaluation, ticker)
    return scores, f"champion v{champion_version.version}'s Ludwig config retrained on the same folds"
