"""Forecast metrics of out-of-sample predictions, and their skill over the naive forecast.

The naive (persistence) forecast says tomorrow = today: tomorrow's close is today's close, and
tomorrow's move has the sign of today's. Metrics of the close are NaN for direction classifiers,
which predict no price.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LOWER_IS_BETTER = frozenset({"mae", "rmse"})


def forecast_metrics(
    close: np.ndarray,
    actual_return: np.ndarray,
    predicted_return: np.ndarray,
    prob_up: np.ndarray,
    last_return: np.ndarray,
) -> dict[str, float]:
    """Metrics of one set of predictions.

    ``close`` is today's close, ``actual_return`` the log return to the next session,
    ``predicted_return`` the predicted log return (NaN for classifiers), ``prob_up`` the predicted
    probability of a rise (NaN for regressors) and ``last_return`` the log return into today.
    """
    close, actual_return, predicted_return, prob_up, last_return = (
        np.asarray(values, dtype="float64")
        for values in (close, actual_return, predicted_return, prob_up, last_return)
    )
    next_close = close * np.exp(actual_return)
    is_regression = not np.isnan(predicted_return).all()
    score = predicted_return if is_regression else prob_up - 0.5
    actual_up = actual_return > 0
    out: dict[str, float] = {}
    if is_regression:
        error = close * np.exp(predicted_return) - next_close
        out["mae"] = float(np.mean(np.abs(error)))
        out["rmse"] = float(np.sqrt(np.mean(error**2)))
    else:
        out["mae"] = out["rmse"] = math.nan
    out["directional_accuracy"] = float(np.mean((score > 0) == actual_up))
    out["ic"] = information_coefficient(score, actual_return)
    naive_error = close - next_close
    out["naive_mae"] = float(np.mean(np.abs(naive_error)))
    out["naive_rmse"] = float(np.sqrt(np.mean(naive_error**2)))
    out["naive_directional_accuracy"] = float(np.mean((last_return > 0) == actual_up))
    out["mae_skill"] = _ratio_skill(out["mae"], out["naive_mae"])
    out["rmse_skill"] = _ratio_skill(out["rmse"], out["naive_rmse"])
    out["directional_accuracy_skill"] = out["directional_accuracy"] - out["naive_directional_accuracy"]
    return out


def information_coefficient(score: np.ndarray, actual_return: np.ndarray) -> float:
    """Spearman rank correlation of the prediction and the realised return (NaN if either is constant)."""
    ranks = pd.DataFrame({"score": score, "actual": actual_return}).rank()
    if ranks["score"].nunique() < 2 or ranks["actual"].nunique() < 2:
        return math.nan
    return float(np.corrcoef(ranks["score"], ranks["actual"])[0, 1])


def mean_metrics(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over folds (NaN stays NaN)."""
    return {name: float(np.mean([fold[name] for fold in per_fold])) for name in per_fold[0]}


def _ratio_skill(error: float, naive_error: float) -> float:
    """1 - error / naive error: > 0 beats the naive forecast."""
    if math.isnan(error) or naive_error == 0:
        return math.nan
    return 1.0 - error / naive_error
