"""Which feature rows and columns drift is measured on.

Reference = the rows of the champion's training window (its run's ``data.first_date`` to
``data.last_date``); current = the last ``window_days`` sessions up to the as-of date. Columns =
the model's numeric inputs; a timeseries input (a window of values) is monitored through the daily
series it is built from, so that its drift is a per-feature statistic like any other.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from mlops_pipeline.market.features import FEATURE_COLUMNS, WINDOW_COLUMNS

# A timeseries input is represented by the daily numeric series its window summarizes.
WINDOW_SOURCES: dict[str, str] = {
    "return_window_10": "log_return_1",
    "close_window_10": "log_return_10",
}


class MonitoringInputError(ValueError):
    """An input table lacks what monitoring needs; the message names the table and the field."""


def drift_columns(input_features: list[str]) -> list[str]:
    """The numeric feature columns whose drift is monitored, in input order, each once."""
    columns: list[str] = []
    for name in input_features:
        column = WINDOW_SOURCES.get(name, name) if name in WINDOW_COLUMNS else name
        if column not in FEATURE_COLUMNS or column in WINDOW_COLUMNS:
            raise MonitoringInputError(f"input feature {name!r} has no numeric feature column to monitor")
        if column not in columns:
            columns.append(column)
    return columns


def _require(frame: pd.DataFrame, columns: list[str], table: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise MonitoringInputError(f"{table}: missing column(s) {', '.join(missing)}")


def reference_window(
    features: pd.DataFrame, first_date: date, last_date: date, columns: list[str]
) -> pd.DataFrame:
    """Feature rows from ``first_date`` to ``last_date`` (inclusive) with every column defined."""
    _require(features, ["date", *columns], "features")
    dates = pd.to_datetime(features["date"])
    rows = features.loc[(dates >= pd.Timestamp(first_date)) & (dates <= pd.Timestamp(last_date))]
    return rows.loc[:, ["date", *columns]].dropna().reset_index(drop=True)


def _last_rows(features: pd.DataFrame, as_of: date, window_days: int, columns: list[str]) -> pd.DataFrame:
    """The last ``window_days`` feature rows up to ``as_of``, oldest first."""
    _require(features, ["date", *columns], "features")
    dates = pd.to_datetime(features["date"])
    return features.loc[dates <= pd.Timestamp(as_of)].sort_values("date").tail(window_days)


def current_window(features: pd.DataFrame, as_of: date, window_days: int, columns: list[str]) -> pd.DataFrame:
    """The last ``window_days`` feature rows up to ``as_of``, without rows where a column is undefined."""
    rows = _last_rows(features, as_of, window_days, columns)
    return rows.loc[:, ["date", *columns]].dropna().reset_index(drop=True)


def empty_columns(features: pd.DataFrame, as_of: date, window_days: int, columns: list[str]) -> list[str]:
    """The columns without a single value in the last ``window_days`` rows up to ``as_of``."""
    rows = _last_rows(features, as_of, window_days, columns)
    return [column for column in columns if rows[column].isna().all()]


def window_sessions(features: pd.DataFrame, as_of: date, window_days: int) -> list[pd.Timestamp]:
    """The sessions (feature dates) of the current window: the days predictions were expected for."""
    _require(features, ["date"], "features")
    dates = pd.to_datetime(features["date"])
    return dates.loc[dates <= pd.Timestamp(as_of)].sort_values().iloc[-window_days:].tolist()
