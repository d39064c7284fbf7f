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

CHAMPION_ALIAS = "champion"
OOS_ARTIFACT = "evaluation/oos_predictions.parquet"


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


def registered_model_name(team: str, ticker: str) -> str:
    return f"{team}-{ticker}"


def load_champion_oos(tracking_uri: str, team: str, ticker: str) -> ChampionPredictions:
    """Download and read the champion's OOS predictions; rows of other tickers are dropped."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = registered_model_name(team, ticker)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as exc:
        # A missing model is RESOURCE_DOES_NOT_EXIST; a model without the alias, INVALID_PARAMETER_VALUE.
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            raise ChampionNotFoundError(f"no {CHAMPION_ALIAS!r} alias on registered model {name!r}") from exc
        raise
    if not version.run_id:
        raise ChampionNotFoundError(f"{name} version {version.version} has no MLflow run")
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = client.download_artifacts(version.run_id, OOS_ARTIFACT, folder)
        except (MlflowException, OSError) as exc:
            raise ChampionNotFoundError(
                f"{name} version {version.version} (run {version.run_id}) has no artifact {OOS_ARTIFACT}"
            ) from exc
        frame = pd.read_parquet(Path(local))
    frame = frame[frame["ticker"] == ticker] if "ticker" in frame.columns else frame.assign(ticker=ticker)
    return ChampionPredictions(
        ticker,
        name,
        str(version.version),
        version.run_id,
        frame.reset_index(drop=True),
        below_naive=version.tags.get("promotion.below_naive") == "True",
    )
