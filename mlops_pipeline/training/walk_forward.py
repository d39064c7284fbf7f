"""Walk-forward evaluation of one Ludwig config on one ticker, and the final fit on all rows.

Each fold's model is saved under ``<model_dir>/folds/<k>`` and the final model under
``<model_dir>/final``, so that a stored model directory reproduces every logged metric by
prediction alone (:func:`rescore`).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_pipeline.config.ludwig import LudwigConfigFile
from mlops_pipeline.config.teams import EvaluationSpec
from mlops_pipeline.training import ludwig_runner
from mlops_pipeline.training.dataset import DatasetError
from mlops_pipeline.training.folds import Fold, walk_forward_folds
from mlops_pipeline.training.metrics import forecast_metrics, mean_metrics

# Columns the metrics need besides the model's own: today's close, the realised next-session
# log return and the log return into today (for the naive direction).
REFERENCE_COLUMNS = ["close", "target_next_return", "log_return_1"]
OOS_COLUMNS = [
    "date",
    "ticker",
    "fold",
    "y_true",
    "y_pred",
    "prob_up",
    "close",
    "actual_return",
    "predicted_return",
]
FINAL_MODEL = "final"
FOLD_MODELS = "folds"


@dataclass
class WalkForwardResult:
    folds: list[Fold]
    predictions: pd.DataFrame
    fold_metrics: list[dict[str, float]]
    mean: dict[str, float]
    training_statistics: dict[str, Any]
    final_model: Any
    ludwig_seconds: float


def evaluation_frame(dataset: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The training dataset plus the reference columns it lacks, taken from the feature table."""
    missing = [column for column in REFERENCE_COLUMNS if column not in dataset.columns]
    frame = dataset
    if missing:
        frame = dataset.merge(features.loc[:, ["date", *missing]], on="date", how="left", validate="1:1")
    unknown = frame[REFERENCE_COLUMNS].isna().any(axis=1)
    if unknown.any():
        dates = frame.loc[unknown, "date"].dt.strftime("%Y-%m-%d").head(5).tolist()
        raise DatasetError(
            f"{int(unknown.sum())} dataset row(s) have no close/return in the features: {dates}"
        )
    return frame


def train_columns(ludwig: LudwigConfigFile) -> list[str]:
    return [*ludwig.input_features, *ludwig.output_features]


def run_walk_forward(
    frame: pd.DataFrame,
    ludwig: LudwigConfigFile,
    spec: EvaluationSpec,
    ticker: str,
    model_dir: Path,
    progress: Callable[[str], None] = lambda _line: None,
) -> WalkForwardResult:
    """Train and score every fold, then fit the final model on every row; save all models.
    ``progress`` receives a line after each training, with the time left at that pace."""
    folds = walk_forward_folds(len(frame), spec)
    columns = train_columns(ludwig)
    started = time.perf_counter()
    trainings = len(folds) + 1

    def trained(done: int, what: str, rows: int) -> None:
        elapsed = time.perf_counter() - started
        left = elapsed / done * (trainings - done)
        pace = f"{done}/{trainings}, {elapsed:.0f} s, about {left:.0f} s left"
        progress(f"{ticker}: {what} trained on {rows} rows ({pace})")

    fold_models: dict[Fold, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ludwig-") as scratch:
        for done, fold in enumerate(folds, start=1):
            rows = frame.iloc[: fold.train_stop][columns]
            model, _ = ludwig_runner.train_model(ludwig.config, rows, Path(scratch) / f"fold-{fold.index}")
            ludwig_runner.save_model(model, rows, model_dir / FOLD_MODELS / str(fold.index))
            fold_models[fold] = model
            trained(done, f"fold {done}", len(rows))
        final, statistics = ludwig_runner.train_model(ludwig.config, frame[columns], Path(scratch) / "final")
        ludwig_runner.save_model(final, frame[columns], model_dir / FINAL_MODEL)
        trained(trainings, "final model", len(frame))
    ludwig_seconds = time.perf_counter() - started
    # The fold models as trained, which predict what their saved copies do (``rescore``), without
    # loading them back: a load parses the Ludwig config and reads the weights, 0.08 s of CPU a fold.
    predictions, per_fold, mean = score_folds(frame, ludwig, folds, ticker, fold_models.__getitem__)
    return WalkForwardResult(folds, predictions, per_fold, mean, statistics, final, ludwig_seconds)


def rescore(
    frame: pd.DataFrame, ludwig: LudwigConfigFile, spec: EvaluationSpec, ticker: str, model_dir: Path
) -> tuple[pd.DataFrame, list[dict[str, float]], dict[str, float]]:
    """Out-of-sample predictions and metrics of the fold models saved in ``model_dir``."""
    folds = walk_forward_folds(len(frame), spec)
    return score_folds(
        frame,
        ludwig,
        folds,
        ticker,
        lambda fold: ludwig_runner.load_model(model_dir / FOLD_MODELS / str(fold.index)),
    )


def score_folds(
    frame: pd.DataFrame,
    ludwig: LudwigConfigFile,
    folds: list[Fold],
    ticker: str,
    model_for: Callable[[Fold], Any],
) -> tuple[pd.DataFrame, list[dict[str, float]], dict[str, float]]:
    parts, per_fold = [], []
    for fold in folds:
        test = frame.iloc[fold.test_start : fold.test_stop].reset_index(drop=True)
        predicted = ludwig_runner.predict(model_for(fold), test[ludwig.input_features], ludwig.output)
        part = oos_rows(test, predicted, ludwig.output, ticker, fold.index)
        per_fold.append(
            forecast_metrics(
                part["close"],
                part["actual_return"],
                part["predicted_return"],
                part["prob_up"],
                test["log_return_1"],
            )
        )
        parts.append(part)
    return pd.concat(parts, ignore_index=True), per_fold, mean_metrics(per_fold)


def oos_rows(
    test: pd.DataFrame, predicted: pd.DataFrame, output: str, ticker: str, fold: int
) -> pd.DataFrame:
    """Out-of-sample rows in the ``evaluation/oos_predictions.parquet`` layout."""
    y_pred = predicted["y_pred"].to_numpy(dtype="float64")
    close = test["close"].to_numpy(dtype="float64")
    return pd.DataFrame(
        {
            "date": test["date"].to_numpy(),
            "ticker": ticker,
            "fold": fold,
            "y_true": test[output].to_numpy(dtype="float64"),
            "y_pred": y_pred,
            "prob_up": predicted["prob_up"].to_numpy(dtype="float64"),
            "close": close,
            "actual_return": test["target_next_return"].to_numpy(dtype="float64"),
            "predicted_return": implied_return(output, y_pred, close),
        }
    )[OOS_COLUMNS]


def implied_return(output: str, y_pred: np.ndarray, close: np.ndarray) -> np.ndarray:
    """The log return a prediction implies (NaN for direction classifiers)."""
    if output == "target_next_return":
        return y_pred
    if output == "target_next_close":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y_pred > 0, np.log(y_pred / close), math.nan)
    return np.full(len(y_pred), math.nan)


def cross_validate(
    frame: pd.DataFrame, ludwig: LudwigConfigFile, spec: EvaluationSpec, ticker: str
) -> dict[str, float]:
    """Mean walk-forward metrics of ``ludwig`` on ``frame`` (fold models are not kept)."""
    return cross_validate_predictions(frame, ludwig, spec, ticker)[1]


def cross_validate_predictions(
    frame: pd.DataFrame, ludwig: LudwigConfigFile, spec: EvaluationSpec, ticker: str
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The out-of-sample predictions and mean walk-forward metrics of ``ludwig`` on ``frame``."""
    folds = walk_forward_folds(len(frame), spec)
    columns = train_columns(ludwig)
    with tempfile.TemporaryDirectory(prefix="ludwig-") as scratch:

        def model_for(fold: Fold) -> Any:
            model, _ = ludwig_runner.train_model(
                ludwig.config, frame.iloc[: fold.train_stop][columns], Path(scratch) / f"fold-{fold.index}"
            )
            return model

        predictions, _, mean = score_folds(frame, ludwig, folds, ticker, model_for)
        return predictions, mean
