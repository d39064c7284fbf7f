"""Per-ticker price history: incremental merges, split adjustment and split inference.

The stored history is append-only: every fetch (a compact 100-row window or a full series) is merged
into it, incoming rows replace stored rows for the same dates and older stored rows are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_pipeline.market.schema import conform_price_frame

# Columns the provider reports as facts about a day; a change in one of them on a stored date is a revision.
RAW_COLUMNS: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "dividend_amount",
    "split_coefficient",
)

# Split coefficients ``infer_splits`` recognizes: forward splits and 1:2 .. 1:10 reverse splits.
COMMON_SPLIT_RATIOS: tuple[float, ...] = (
    2.0,
    3.0,
    4.0,
    5.0,
    10.0,
    20.0,
    1.5,
    *(1.0 / denominator for denominator in range(2, 11)),
)

# Columns of ``HistoryMerge.revisions``: one row per revised (date, column) with the stored and new value.
REVISION_COLUMNS: dict[str, str] = {
    "date": "datetime64[ns]",
    "column": "object",
    "old": "float64",
    "new": "float64",
}


@dataclass(frozen=True)
class HistoryMerge:
    """The outcome of merging a fetched window into the stored history."""

    history: pd.DataFrame
    appended: int
    revisions: pd.DataFrame
    first_date: pd.Timestamp | None
    last_date: pd.Timestamp | None


@dataclass(frozen=True)
class SplitInference:
    """A price frame with inferred split coefficients and the splits that were inferred.

    ``splits`` has columns ``date``, ``split_coefficient`` (the matched common ratio) and
    ``observed_ratio`` (previous close / open on that day).
    """

    frame: pd.DataFrame
    splits: pd.DataFrame


def _product_of_later_rows(values: np.ndarray) -> np.ndarray:
    """For each row, the product of the values of all *later* rows (1.0 on the last row)."""
    from_here_on = np.cumprod(values[::-1])[::-1]
    return np.append(from_here_on[1:], 1.0)


def split_adjust(frame: pd.DataFrame) -> pd.DataFrame:
    """Back-adjust raw open/high/low/close/volume for splits, from ``split_coefficient``.

    Every row before a split ex-date is divided (prices) or multiplied (volume, rounded to whole shares)
    by the product of the coefficients of all later splits, so the series is continuous across splits.
    ``adjusted_close`` and ``dividend_amount`` are left as they are; ``split_coefficient`` becomes 1.0
    because the splits are now applied. A frame without splits is returned unchanged.
    """
    adjusted = conform_price_frame(frame)
    factor = _product_of_later_rows(adjusted["split_coefficient"].to_numpy(dtype="float64"))
    for column in ("open", "high", "low", "close"):
        adjusted[column] = adjusted[column] / factor
    adjusted["volume"] = np.rint(adjusted["volume"] * factor).astype("int64")
    adjusted["split_coefficient"] = 1.0
    return adjusted


def infer_splits(frame: pd.DataFrame, *, tolerance: float = 0.03) -> SplitInference:
    """Infer split ex-dates from raw prices, for sources that report no split data.

    This is a heuristic, used only when the source supplies raw prices without split coefficients
    (AlphaVantage TIME_SERIES_DAILY on free keys). A day is taken as a split ex-date when the overnight
    ratio previous close / open is within ``tolerance`` (relative) of a common split ratio
    (``COMMON_SPLIT_RATIOS``) and the move is at least 40 % in either direction, i.e. the ratio is at
    least 1.4 or at most 1/1.4 (so a 3:2 split, a 33 % drop in price, still qualifies). An ordinary
    crash or rally that happens to land near a split ratio would be misread; a real adjusted source is
    always preferred.
    """
    inferred = conform_price_frame(frame)
    observed = (inferred["close"].shift(1) / inferred["open"]).to_numpy()
    candidates = np.asarray(COMMON_SPLIT_RATIOS)
    relative_error = np.abs(observed[:, None] / candidates[None, :] - 1.0)
    nearest = np.argmin(np.nan_to_num(relative_error, nan=np.inf), axis=1)
    matched = relative_error[np.arange(len(observed)), nearest] <= tolerance
    is_split = matched & (np.abs(np.log(observed)) >= np.log(1.4))

    inferred.loc[is_split, "split_coefficient"] = candidates[nearest[is_split]]
    splits = pd.DataFrame(
        {
            "date": inferred.loc[is_split, "date"].to_numpy(),
            "split_coefficient": candidates[nearest[is_split]],
            "observed_ratio": observed[is_split],
        }
    )
    return SplitInference(frame=inferred, splits=splits)


def merge_history(stored: pd.DataFrame, incoming: pd.DataFrame, *, tolerance: float = 1e-6) -> HistoryMerge:
    """Merge a fetched window into the stored history.

    Incoming rows replace stored rows of the same date (the source revised them); stored rows the window
    does not cover are kept. When the window brings a new split or dividend, the provider's
    ``adjusted_close`` of every older row changes; stored rows the window does not cover are re-adjusted
    the same way (divided by new split coefficients, multiplied by new dividend factors
    ``1 - dividend / previous close``, the convention of AlphaVantage's adjusted series), so the merged
    ``adjusted_close`` stays continuous. Such expected re-adjustments are not revisions.

    ``revisions`` lists, for dates present in both frames, each ``RAW_COLUMNS`` value that changed and
    each ``adjusted_close`` that differs from the stored value re-adjusted for the new corporate actions.
    ``tolerance`` is relative for float columns; volume is compared exactly.
    """
    old = conform_price_frame(stored).set_index("date")
    new = conform_price_frame(incoming).set_index("date")
    if old.index.has_duplicates or new.index.has_duplicates:
        raise ValueError("merge_history needs unique dates in both frames")

    merged = pd.concat([old.loc[~old.index.isin(new.index)], new]).sort_index()
    readjustment = _new_action_readjustment(old, new, merged)
    kept = ~merged.index.isin(new.index)
    merged.loc[kept, "adjusted_close"] *= readjustment[kept]

    overlap = merged.index[merged.index.isin(old.index) & ~kept]
    revisions = _revisions(
        old.loc[overlap],
        new.loc[overlap],
        expected_adjusted=old.loc[overlap, "adjusted_close"] * readjustment.loc[overlap],
        tolerance=tolerance,
    )
    history = merged.reset_index()
    return HistoryMerge(
        history=history,
        appended=int((~new.index.isin(old.index)).sum()),
        revisions=revisions,
        first_date=history["date"].iloc[0] if len(history) else None,
        last_date=history["date"].iloc[-1] if len(history) else None,
    )


def _new_action_readjustment(old: pd.DataFrame, new: pd.DataFrame, merged: pd.DataFrame) -> pd.Series:
    """Per merged row, the factor a stored ``adjusted_close`` changes by due to new later actions.

    A split or dividend counts as new where the incoming row's differs from the stored row's (or the
    date was not stored); both are valued with the same previous close, so unchanged actions cancel.
    """
    previous_close = merged["close"].shift(1)

    def action_multiplier(actions: pd.DataFrame) -> pd.Series:
        aligned = actions.reindex(merged.index)
        dividend_factor = 1.0 - aligned["dividend_amount"].fillna(0.0) / previous_close
        return dividend_factor.fillna(1.0) / aligned["split_coefficient"].fillna(1.0)

    replaced = old.loc[old.index.isin(new.index)]
    change = (action_multiplier(new) / action_multiplier(replaced)).to_numpy()
    return pd.Series(_product_of_later_rows(change), index=merged.index)


def _revisions(
    old: pd.DataFrame, new: pd.DataFrame, *, expected_adjusted: pd.Series, tolerance: float
) -> pd.DataFrame:
    float_columns = [column for column in RAW_COLUMNS if column != "volume"]
    changed = pd.DataFrame(
        ~np.isclose(new[float_columns], old[float_columns], rtol=tolerance, atol=0.0),
        index=old.index,
        columns=float_columns,
    )
    changed["volume"] = new["volume"] != old["volume"]
    changed["adjusted_close"] = ~np.isclose(
        new["adjusted_close"], expected_adjusted, rtol=tolerance, atol=0.0
    )
    columns = [*RAW_COLUMNS, "adjusted_close"]
    rows, positions = np.nonzero(changed[columns].to_numpy())
    revisions = pd.DataFrame(
        {
            "date": old.index[rows],
            "column": np.asarray(columns, dtype=object)[positions],
            "old": old[columns].to_numpy(dtype="float64")[rows, positions],
            "new": new[columns].to_numpy(dtype="float64")[rows, positions],
        }
    )
    return revisions.astype(REVISION_COLUMNS)
