"""Small out-of-sample prediction frames in the training team's contract format."""

from __future__ import annotations

import numpy as np
import pandas as pd


def oos_frame(
    dates: list[str],
    ticker: str,
    actual_simple: list[float],
    predicted_return: list[float] | None = None,
    prob_up: list[float] | None = None,
    fold: int = 0,
) -> pd.DataFrame:
    """One ticker's rows; returns are given as simple returns and stored as log returns."""
    n = len(dates)
    actual = np.log1p(np.asarray(actual_simple, dtype=float))
    predicted = np.asarray(predicted_return if predicted_return is not None else [np.nan] * n, dtype=float)
    return pd.DataFrame(
        {
            "date": pd.to_datetime(dates),
            "ticker": ticker,
            "fold": fold,
            "y_true": actual,
            "y_pred": predicted,
            "prob_up": np.asarray(prob_up if prob_up is not None else [np.nan] * n, dtype=float),
            "close": 100.0,
            "actual_return": actual,
            "predicted_return": predicted,
        }
    )
