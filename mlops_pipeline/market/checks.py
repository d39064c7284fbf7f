"""Data checks on price histories and feature tables.

Each check is a plain function returning a ``CheckOutcome``; ``details`` names the offending dates or
rows (at most ``MAX_LISTED`` of them) so a failed check can be acted on without reloading the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_pipeline.market.calendar import trading_days
from mlops_pipeline.market.features import (
    FEATURE_COLUMNS,
    WARMUP_ROWS,
    WINDOW_COLUMNS,
    adjusted_prices,
    features_from_adjusted,
)
from mlops_pipeline.market.schema import PRICE_COLUMNS

MAX_LISTED = 10
PRICE_VALUE_COLUMNS: list[str] = ["open", "high", "low", "close", "adjusted_close"]

Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: Severity
    description: str
    details: dict[str, Any] = field(default_factory=dict)


def failed_names(outcomes: Sequence[CheckOutcome]) -> list[str]:
    """The names of the failed checks, as a stored manifest records them."""
    return [outcome.name for outcome in outcomes if not outcome.passed]


def _listed_dates(dates: pd.Series | pd.Index) -> list[str]:
    return [stamp.strftime("%Y-%m-%d") for stamp in pd.DatetimeIndex(dates)[:MAX_LISTED]]


def check_schema(prices: pd.DataFrame) -> CheckOutcome:
    """The frame has exactly the canonical price columns, in order, with the canonical dtypes."""
    actual = {column: str(dtype) for column, dtype in prices.dtypes.items()}
    missing = [column for column in PRICE_COLUMNS if column not in actual]
    unexpected = [column for column in actual if column not in PRICE_COLUMNS]
    wrong_dtypes = {
        column: actual[column]
        for column, dtype in PRICE_COLUMNS.items()
        if column in actual and actual[column] != dtype
    }
    in_order = list(actual) == list(PRICE_COLUMNS)
    return CheckOutcome(
        name="price_schema",
        passed=in_order and not wrong_dtypes,
        severity="ERROR",
        description="Price history has exactly the canonical columns, in order, with canonical dtypes.",
        details={"missing": missing, "unexpected": unexpected, "wrong_dtypes": wrong_dtypes},
    )


def check_unique_dates(prices: pd.DataFrame) -> CheckOutcome:
    """No date appears twice."""
    duplicated = prices.loc[prices["date"].duplicated(keep="first"), "date"].drop_duplicates()
    return CheckOutcome(
        name="unique_dates",
        passed=duplicated.empty,
        severity="ERROR",
        description="Every date appears at most once in the price history.",
        details={"duplicate_count": len(duplicated), "duplicate_dates": _listed_dates(duplicated)},
    )


def check_trading_days(prices: pd.DataFrame) -> CheckOutcome:
    """Between its first and last row the history has a row for every NYSE session and no other day."""
    dates = pd.DatetimeIndex(prices["date"]).normalize().unique()
    sessions = pd.DatetimeIndex([]) if dates.empty else trading_days(dates.min(), dates.max())
    missing = sessions.difference(dates)
    extra = dates.difference(sessions)
    return CheckOutcome(
        name="trading_days",
        passed=missing.empty and extra.empty,
        severity="ERROR",
        description="The history has one row per NYSE trading day between its first and last date.",
        details={
            "missing_count": len(missing),
            "missing_dates": _listed_dates(missing),
            "non_trading_count": len(extra),
            "non_trading_dates": _listed_dates(extra),
        },
    )


def check_positive_prices(prices: pd.DataFrame) -> CheckOutcome:
    """All prices are strictly positive and volumes are not negative."""
    bad = prices[PRICE_VALUE_COLUMNS].le(0.0) | prices[PRICE_VALUE_COLUMNS].isna()
    bad["volume"] = prices["volume"].lt(0)
    offending = bad.any(axis=1)
    listed = bad[offending].head(MAX_LISTED)
    rows = [
        {"date": date, "columns": list(listed.columns[flags])}
        for date, flags in zip(_listed_dates(prices.loc[offending, "date"]), listed.to_numpy(), strict=True)
    ]
    return CheckOutcome(
        name="positive_prices",
        passed=not offending.any(),
        severity="ERROR",
        description="Open, high, low, close and adjusted close are > 0; volume is >= 0.",
        details={"row_count": int(offending.sum()), "rows": rows},
    )


def check_price_ranges(prices: pd.DataFrame) -> CheckOutcome:
    """low <= open <= high and low <= close <= high on every row."""
    low, high = prices["low"], prices["high"]
    violations = {
        "open_below_low": prices["open"] < low,
        "open_above_high": prices["open"] > high,
        "close_below_low": prices["close"] < low,
        "close_above_high": prices["close"] > high,
    }
    offending = pd.concat(violations, axis=1).any(axis=1)
    return CheckOutcome(
        name="price_ranges",
        passed=not offending.any(),
        severity="ERROR",
        description="Each day's open and close lie within its low..high range.",
        details={
            "row_count": int(offending.sum()),
            **{kind: _listed_dates(prices.loc[mask, "date"]) for kind, mask in violations.items()},
        },
    )


def check_freshness(prices: pd.DataFrame, expected_last_date: pd.Timestamp | str) -> CheckOutcome:
    """The history holds the as-of session (the last completed trading day of the run).

    Normally that is the last row. When a past day is re-run (a replay or a backfill), the stored
    history may already extend beyond it; the check then passes as long as the as-of row exists,
    and downstream assets use rows up to the as-of date only.
    """
    expected = pd.Timestamp(expected_last_date).normalize()
    dates = pd.DatetimeIndex(prices["date"]).normalize() if len(prices) else pd.DatetimeIndex([])
    last = dates.max() if len(dates) else None
    return CheckOutcome(
        name="freshness",
        passed=bool(len(dates)) and expected in dates,
        severity="ERROR",
        description="The history reaches the as-of session (the last completed trading day).",
        details={
            "last_date": None if last is None else last.strftime("%Y-%m-%d"),
            "expected_last_date": expected.strftime("%Y-%m-%d"),
            "extends_past_as_of": bool(last is not None and last > expected),
        },
    )


def check_point_in_time(
    prices: pd.DataFrame, features: pd.DataFrame, *, sample_days: int = 5, tolerance: float = 1e-9
) -> CheckOutcome:
    """Features recomputed from histories truncated at sample dates equal the given features.

    The history is adjusted once over its full length (corporate-action adjustment legitimately uses
    later splits and dividends, as the provider's adjusted close does), then truncated after each of
    ``sample_days`` dates spread evenly from the end of the warm-up to the second-to-last row. Every
    feature of every row up to the sample date must match the given table within ``tolerance``
    (relative and absolute); a feature that uses later prices differs.
    """
    adjusted = adjusted_prices(prices)
    given = features.set_index("date")
    first, last = min(WARMUP_ROWS, len(adjusted) - 1), len(adjusted) - 2
    positions = np.unique(np.linspace(first, last, num=sample_days).round().astype(int)) if last >= 0 else []
    numeric_columns = [column for column in FEATURE_COLUMNS if column not in WINDOW_COLUMNS]
    mismatches: list[dict[str, Any]] = []
    for position in positions:
        recomputed = features_from_adjusted(adjusted.iloc[: position + 1]).set_index("date")
        common = recomputed.index.intersection(given.index)
        expected, actual = recomputed.loc[common], given.loc[common]
        differs = pd.DataFrame(
            ~np.isclose(
                actual[numeric_columns].to_numpy(dtype="float64"),
                expected[numeric_columns].to_numpy(dtype="float64"),
                rtol=tolerance,
                atol=tolerance,
                equal_nan=True,
            ),
            index=common,
            columns=numeric_columns,
        )
        for column in WINDOW_COLUMNS:
            differs[column] = ~(
                (actual[column] == expected[column]) | (actual[column].isna() & expected[column].isna())
            )
        rows, columns = np.nonzero(differs.to_numpy())
        mismatches.extend(
            {
                "sample_date": adjusted["date"].iloc[position].strftime("%Y-%m-%d"),
                "date": common[row].strftime("%Y-%m-%d"),
                "column": differs.columns[column],
            }
            for row, column in zip(rows, columns, strict=True)
        )
    return CheckOutcome(
        name="point_in_time",
        passed=not mismatches,
        severity="ERROR",
        description="Features on each day depend only on prices up to that day (no look-ahead).",
        details={
            "sample_dates": [adjusted["date"].iloc[position].strftime("%Y-%m-%d") for position in positions],
            "mismatch_count": len(mismatches),
            "mismatches": mismatches[:MAX_LISTED],
        },
    )


def check_targets(prices: pd.DataFrame, features: pd.DataFrame, *, tolerance: float = 1e-9) -> CheckOutcome:
    """Targets describe the next trading day: its adjusted close, the log return to it and its sign.

    The next day is taken from the price history; rows without a next day must have missing targets.
    """
    adjusted = adjusted_prices(prices)
    next_close = pd.Series(adjusted["close"].shift(-1).to_numpy(), index=adjusted["date"])
    close = pd.Series(adjusted["close"].to_numpy(), index=adjusted["date"])
    dates = pd.DatetimeIndex(features["date"])
    expected_close = next_close.reindex(dates).to_numpy()
    expected_return = np.log(expected_close / close.reindex(dates).to_numpy())
    expected_direction = np.where(np.isnan(expected_return), np.nan, expected_return > 0)

    def differs(actual: pd.Series, expected: np.ndarray) -> np.ndarray:
        values = actual.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        return ~np.isclose(values, expected, rtol=tolerance, atol=tolerance, equal_nan=True)

    wrong = {
        "target_next_close": differs(features["target_next_close"], expected_close),
        "target_next_return": differs(features["target_next_return"], expected_return),
        "target_next_direction": differs(features["target_next_direction"], expected_direction),
    }
    offending = np.logical_or.reduce(list(wrong.values()))
    return CheckOutcome(
        name="targets",
        passed=not offending.any(),
        severity="ERROR",
        description="Targets equal the next trading day's adjusted close, log return and direction.",
        details={
            "row_count": int(offending.sum()),
            **{column: _listed_dates(dates[mask]) for column, mask in wrong.items()},
        },
    )


def check_price_history(prices: pd.DataFrame, expected_last_date: pd.Timestamp | str) -> list[CheckOutcome]:
    """All price-history checks."""
    return [
        check_schema(prices),
        check_unique_dates(prices),
        check_trading_days(prices),
        check_positive_prices(prices),
        check_price_ranges(prices),
        check_freshness(prices, expected_last_date),
    ]
