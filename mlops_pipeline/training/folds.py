"""Chronological walk-forward folds: expanding training windows, a purge gap, then a test window.

Rows are the training dataset's, oldest first, one per session; a row's label is the next
session's value (horizon 1). The purge gap between the last training row and the first test row
is at least the label horizon plus the longest lookback of the model's input features, so no
training label or training feature window overlaps a test row. Every candidate model of a
ticker is evaluated on the same folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mlops_pipeline.config.teams import EvaluationSpec
from mlops_pipeline.market.calendar import trading_day_after

LABEL_HORIZON = 1
# Sessions of history each feature reads besides its own row (indicator windows; the EMA-based
# ones are counted by their span, MACD's signal line by slow span + signal span - 1).
FEATURE_LOOKBACK: dict[str, int] = {
    "close": 0,
    "open": 0,
    "high": 0,
    "low": 0,
    "volume": 0,
    "rsi_14": 14,
    "ema_10": 10,
    "sma_10": 9,
    "dema_10": 20,
    "macd": 26,
    "macd_signal": 34,
    "macd_hist": 34,
    "bb_pct_b": 19,
    "log_return_1": 1,
    "log_return_5": 5,
    "log_return_10": 10,
    "volatility_20": 20,
    "volume_z_20": 19,
    "close_window_10": 9,
    "return_window_10": 10,
}
MIN_TRAIN_ROWS = 100


class FoldError(ValueError):
    """The dataset is too short for the requested folds."""


@dataclass(frozen=True)
class Fold:
    """Row ranges ``[start, stop)`` of one fold; training always starts at row 0."""

    index: int
    train_stop: int
    test_start: int
    test_stop: int

    @property
    def purge(self) -> int:
        return self.test_start - self.train_stop


def required_purge() -> int:
    """The smallest safe gap for any candidate: label horizon + the longest feature lookback.

    It does not depend on a config's inputs, so that every candidate of a ticker gets the same folds.
    """
    return LABEL_HORIZON + max(FEATURE_LOOKBACK.values())


def rows_needed(spec: EvaluationSpec) -> int:
    """The fewest dataset rows that give ``spec.folds`` folds with a safe purge gap and enough training."""
    return MIN_TRAIN_ROWS + max(spec.purge_days, required_purge()) + spec.folds * spec.test_days


def walk_forward_folds(rows: int, spec: EvaluationSpec) -> list[Fold]:
    """``spec.folds`` consecutive test windows of ``spec.test_days`` rows ending at the last row,
    each trained on everything up to ``purge`` rows before it (purge = max(spec, required))."""
    purge = max(spec.purge_days, required_purge())
    first_test = rows - spec.folds * spec.test_days
    needed = rows_needed(spec)
    if rows < needed:
        raise FoldError(
            f"{rows} rows are too few for {spec.folds} folds of {spec.test_days} test rows with a "
            f"{purge}-row purge gap and >= {MIN_TRAIN_ROWS} training rows (need {needed})"
        )
    folds = []
    for index in range(spec.folds):
        test_start = first_test + index * spec.test_days
        folds.append(Fold(index, test_start - purge, test_start, test_start + spec.test_days))
    return folds


def history_shortfall(dataset_rows: int, spec: EvaluationSpec, as_of: date) -> str | None:
    """Why training waits for more history, in one line, or ``None`` when there are enough rows.

    Every new session adds one dataset row, so the first session with enough rows is known ahead.
    """
    needed = rows_needed(spec)
    missing = needed - dataset_rows
    if missing <= 0:
        return None
    start = trading_day_after(as_of, missing)
    when = f"on {start}" if start else f"in {missing} sessions"
    return (
        f"waiting for history: {dataset_rows} usable sessions of the {needed} that {spec.folds} "
        f"walk-forward folds need; training starts {when} (import older history with "
        "`mlops market import` to start now)"
    )
