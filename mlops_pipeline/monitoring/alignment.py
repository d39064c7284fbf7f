"""Join predictions to what actually happened on their target date.

A prediction made from the session ``as_of_date`` is scored against the adjusted close of its own
``target_date`` (the next NYSE session, as serving recorded it), never against "the next row":
a holiday between the two dates or a day without a prediction cannot shift the comparison. The
naive forecast over the same days is "tomorrow = today": the as-of close for the price and the
as-of session's own move for the direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_pipeline.monitoring.windows import MonitoringInputError
from mlops_pipeline.team_store import PREDICTION_VALUES

ALIGNED_COLUMNS: list[str] = [
    "as_of_date",
    "target_date",
    "base_close",
    "actual_close",
    "predicted_close",
    "naive_close",
    "prob_up",
    "predicted_direction",
    "actual_direction",
    "naive_direction",
]


@dataclass(frozen=True)
class AlignedPredictions:
    """Scored predictions of the window plus the days that could not be scored, by reason."""

    frame: pd.DataFrame
    expected_days: list[str]
    missing_days: list[str]  # no prediction for the session
    pending_days: list[str]  # the target session has not closed yet
    unmatched_days: list[str]  # the target date is in the past but is not a session in the features


def _days(values: pd.Series | list[pd.Timestamp]) -> list[str]:
    return [pd.Timestamp(value).strftime("%Y-%m-%d") for value in values]


def _normalized_dates(values: pd.Series, table: str, column: str) -> pd.Series:
    try:
        stamps = pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise MonitoringInputError(f"{table}: column {column!r} does not hold dates: {exc}") from exc
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.dt.normalize()


def align_predictions(
    predictions: pd.DataFrame | None, features: pd.DataFrame, sessions: list[pd.Timestamp]
) -> AlignedPredictions:
    """Score the predictions made on ``sessions`` against the realized closes in ``features``."""
    expected = [pd.Timestamp(day).normalize() for day in sessions]
    if predictions is None or predictions.empty:
        empty = pd.DataFrame({column: pd.Series(dtype="float64") for column in ALIGNED_COLUMNS})
        return AlignedPredictions(empty, _days(expected), _days(expected), [], [])
    missing_columns = [column for column in PREDICTION_VALUES if column not in predictions.columns]
    if missing_columns:
        raise MonitoringInputError(f"predictions: missing column(s) {', '.join(missing_columns)}")
    for column in ("date", "close", "log_return_1"):
        if column not in features.columns:
            raise MonitoringInputError(f"features: missing column {column!r}")

    preds = predictions.loc[:, PREDICTION_VALUES].copy()
    preds["as_of_date"] = _normalized_dates(preds["as_of_date"], "predictions", "as_of_date")
    preds["target_date"] = _normalized_dates(preds["target_date"], "predictions", "target_date")
    preds = preds.drop_duplicates("as_of_date", keep="last")
    preds = preds.loc[preds["as_of_date"].isin(expected)]

    market = features.loc[:, ["date", "close", "log_return_1"]].copy()
    market["date"] = _normalized_dates(market["date"], "features", "date")
    market = market.set_index("date")
    last_known = market.index.max()

    joined = preds.join(market, on="as_of_date").rename(
        columns={"close": "base_close", "log_return_1": "as_of_return"}
    )
    joined["actual_close"] = joined["target_date"].map(market["close"])
    pending = joined["target_date"] > last_known
    unmatched = joined["actual_close"].isna() & ~pending
    scored = joined.loc[joined["actual_close"].notna() & joined["base_close"].notna()].copy()

    implied = scored["base_close"] * np.exp(scored["predicted_return"].astype("float64"))
    scored["predicted_close"] = implied.where(
        scored["predicted_return"].notna(), scored["predicted_close"].astype("float64")
    )
    direction = scored["predicted_direction"].astype("float64")
    fallback = np.where(
        scored["predicted_return"].notna(),
        (scored["predicted_return"] > 0).astype("float64"),
        (scored["prob_up"] >= 0.5).astype("float64").where(scored["prob_up"].notna()),
    )
    scored["predicted_direction"] = direction.fillna(pd.Series(fallback, index=scored.index))
    scored["actual_direction"] = (scored["actual_close"] > scored["base_close"]).astype("int64")
    scored["naive_close"] = scored["base_close"]
    scored["naive_direction"] = (
        (scored["as_of_return"] > 0).astype("float64").where(scored["as_of_return"].notna())
    )
    frame = scored.loc[:, ALIGNED_COLUMNS].sort_values("as_of_date").reset_index(drop=True)

    predicted_days = set(preds["as_of_date"])
    return AlignedPredictions(
        frame=frame,
        expected_days=_days(expected),
        missing_days=_days([day for day in expected if day not in predicted_days]),
        pending_days=_days(joined.loc[pending, "as_of_date"]),
        unmatched_days=_days(joined.loc[unmatched, "as_of_date"]),
    )
