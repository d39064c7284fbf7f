"""Live performance numbers of the champion and of the naive forecast over the same scored days."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_pipeline.monitoring.alignment import AlignedPredictions
from mlops_pipeline.monitoring.results import ModelKind, PerformanceResult, not_enough_data

MIN_SCORED_PREDICTIONS = 5


def _price_errors(predicted: pd.Series, actual: pd.Series) -> tuple[float, float, float]:
    error = predicted.to_numpy(dtype="float64") - actual.to_numpy(dtype="float64")
    mae = float(np.mean(np.abs(error)))
    rmse = float(np.sqrt(np.mean(error**2)))
    mape = float(np.mean(np.abs(error) / np.abs(actual.to_numpy(dtype="float64"))) * 100.0)
    return mae, rmse, mape


def _accuracy(predicted: pd.Series, actual: pd.Series) -> float | None:
    known = predicted.notna()
    if not known.any():
        return None
    return float((predicted[known].astype("int64") == actual[known].astype("int64")).mean())


def summarize_performance(aligned: AlignedPredictions, kind: ModelKind) -> PerformanceResult:
    """MAE, RMSE, MAPE and directional accuracy of the champion and of the naive forecast.

    Fewer than ``MIN_SCORED_PREDICTIONS`` scored predictions give no numbers, only the note
    ``not enough data (n=...)``; the missing and pending days are listed either way.
    """
    frame = aligned.frame
    base = {
        "kind": kind,
        "n_predictions": len(frame),
        "expected_days": aligned.expected_days,
        "missing_days": aligned.missing_days,
        "pending_days": aligned.pending_days,
        "unmatched_days": aligned.unmatched_days,
    }
    if len(frame) < MIN_SCORED_PREDICTIONS:
        return PerformanceResult(**base, note=not_enough_data(len(frame)))
    numbers: dict[str, float | None] = {
        "directional_accuracy": _accuracy(frame["predicted_direction"], frame["actual_direction"]),
        "naive_directional_accuracy": _accuracy(frame["naive_direction"], frame["actual_direction"]),
    }
    naive_mae, naive_rmse, naive_mape = _price_errors(frame["naive_close"], frame["actual_close"])
    numbers.update(naive_mae=naive_mae, naive_rmse=naive_rmse, naive_mape=naive_mape)
    if kind == "regression":
        priced = frame["predicted_close"].notna()
        if int(priced.sum()) < MIN_SCORED_PREDICTIONS:
            return PerformanceResult(**base, note=f"predicted prices: {not_enough_data(int(priced.sum()))}")
        mae, rmse, mape = _price_errors(
            frame.loc[priced, "predicted_close"], frame.loc[priced, "actual_close"]
        )
        numbers.update(mae=mae, rmse=rmse, mape=mape)
    return PerformanceResult(**base, **numbers)


def evaluation_error(oos: pd.DataFrame, kind: ModelKind) -> float | None:
    """The champion's own walk-forward error, on the same scale as :attr:`PerformanceResult.error`.

    ``oos`` is the training run's ``evaluation/oos_predictions.parquet``: regressors give the MAE of
    the implied price ``close * exp(predicted_return)`` against ``close * exp(actual_return)``;
    direction models give the share of wrong directions (``prob_up >= 0.5`` against
    ``actual_return > 0``). ``None`` when the needed columns hold no usable rows.
    """
    if kind == "regression":
        needed = ["close", "predicted_return", "actual_return"]
        if any(column not in oos.columns for column in needed):
            return None
        rows = oos.loc[:, needed].dropna()
        if rows.empty:
            return None
        predicted = rows["close"] * np.exp(rows["predicted_return"])
        actual = rows["close"] * np.exp(rows["actual_return"])
        return float(np.mean(np.abs(predicted - actual)))
    if any(column not in oos.columns for column in ("prob_up", "actual_return")):
        return None
    rows = oos.loc[:, ["prob_up", "actual_return"]].dropna()
    if rows.empty:
        return None
    return float(((rows["prob_up"] >= 0.5) != (rows["actual_return"] > 0)).mean())
