"""The walk-forward out-of-sample predictions of a ticker's champion model, from MLflow.

Contract (training): registered model ``<team>-<TICKER>`` with alias ``champion``; its run holds the
artifact ``evaluation/oos_predictions.parquet``; the version's tag ``promotion.below_naive`` is
``True`` when it serves by the bootstrap rule, below the team's required skill vs naive.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_pipeline.model_registry import (
    CHAMPION,
    OOS_ARTIFACT,
    MlflowRegistry,
    TrackingError,
    registered_model_name,
)


class ChampionNotFoundError(LookupError):
    """The ticker has no champion (yet), or its run lacks the OOS predictions artifact."""


@dataclass(frozen=True)
class ChampionPredictions:
    ticker: str
    model_name: str
    version: str
    run_id: str
    frame: pd.DataFrame
    below_naive: bool = False


def load_champion_oos(
    tracking_uri: str, team: str, ticker: str, version_number: str | None = None
) -> ChampionPredictions:
    """Download and read the OOS predictions of the champion (or of ``version_number``, a version
    that was the champion); rows of other tickers are dropped."""
    name = registered_model_name(team, ticker)
    registry = MlflowRegistry(tracking_uri)
    if version_number is None:
        version = registry.alias_version(name, CHAMPION)
        if version is None:
            raise ChampionNotFoundError(f"no {CHAMPION!r} alias on registered model {name!r}")
    else:  # a version recorded as the champion of a session: its absence is an error, not a state
        version = registry.version(name, version_number)
    if not version.run_id:
        raise ChampionNotFoundError(f"{name} version {version.version} has no MLflow run")
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = registry.download(version.run_id, OOS_ARTIFACT, Path(folder))
        except TrackingError as exc:
            raise ChampionNotFoundError(
                f"{name} version {version.version} (run {version.run_id}) has no artifact {OOS_ARTIFACT}"
            ) from exc
        frame = pd.read_parquet(local)
    frame = frame[frame["ticker"] == ticker] if "ticker" in frame.columns else frame.assign(ticker=ticker)
    return ChampionPredictions(
        ticker,
        name,
        str(version.version),
        version.run_id,
        frame.reset_index(drop=True),
        below_naive=version.tags.get("promotion.below_naive") == "True",
    )
