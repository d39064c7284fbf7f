import numpy as np
import pandas as pd
import pytest
from _frames import random_walk_prices, with_split

from mlops_pipeline.market.checks import (
    check_freshness,
    check_point_in_time,
    check_positive_prices,
    check_price_history,
    check_price_ranges,
    check_schema,
    check_targets,
    check_trading_days,
    check_unique_dates,
)
from mlops_pipeline.market.features import build_features


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return random_walk_prices(120, start="2024-01-02")


@pytest.fixture(scope="module")
def features(prices) -> pd.DataFrame:
    return build_features(prices)


def row_on(frame: pd.DataFrame, day: str) -> int:
    return int(np.flatnonzero(frame["date"] == pd.Timestamp(day))[0])


def test_good_history_passes_every_check(prices):
    outcomes = check_price_history(prices, expected_last_date=prices["date"].iloc[-1])
    assert [outcome.name for outcome in outcomes if not outcome.passed] == []
    assert {outcome.severity for outcome in outcomes} == {"ERROR"}


def test_schema_fails_on_missing_column_and_wrong_dtype(prices):
    missing = check_schema(prices.drop(columns="dividend_amount"))
    assert not missing.passed
    assert missing.details["missing"] == ["dividend_amount"]
    wrong = check_schema(prices.astype({"volume": "float64"}))
    assert not wrong.passed
    assert wrong.details["wrong_dtypes"] == {"volume": "float64"}


def test_duplicate_date_fails(prices):
    duplicated = pd.concat([prices, prices.iloc[[40]]]).sort_values("date").reset_index(drop=True)
    outcome = check_unique_dates(duplicated)
    assert not outcome.passed
    assert outcome.details["duplicate_dates"] == [prices["date"].iloc[40].strftime("%Y-%m-%d")]


def test_missing_trading_day_fails(prices):
    outcome = check_trading_days(prices.drop(index=row_on(prices, "2024-03-28")))
    assert not outcome.passed
    assert outcome.details["missing_dates"] == ["2024-03-28"]


def test_row_on_a_non_trading_day_fails(prices):
    good_friday = prices.iloc[[row_on(prices, "2024-03-28")]].assign(date=pd.Timestamp("2024-03-29"))
    outcome = check_trading_days(pd.concat([prices, good_friday]).sort_values("date"))
    assert not outcome.passed
    assert outcome.details["non_trading_dates"] == ["2024-03-29"]


def test_non_positive_price_fails(prices):
    bad = prices.copy()
    bad.loc[row_on(bad, "2024-02-05"), "close"] = -1.0
    outcome = check_positive_prices(bad)
    assert not outcome.passed
    assert outcome.details["rows"] == [{"date": "2024-02-05", "columns": ["close"]}]


def test_close_above_high_fails(prices):
    bad = prices.copy()
    row = row_on(bad, "2024-04-10")
    bad.loc[row, "high"] = bad.loc[row, "close"] * 0.99
    outcome = check_price_ranges(bad)
    assert not outcome.passed
    assert outcome.details["close_above_high"] == ["2024-04-10"]


def test_stale_history_fails(prices):
    outcome = check_freshness(prices.iloc[:-1], expected_last_date=prices["date"].iloc[-1])
    assert not outcome.passed
    assert outcome.details == {
        "last_date": "2024-06-21",
        "expected_last_date": "2024-06-24",
        "extends_past_as_of": False,
    }


def test_rerun_of_a_past_session_is_fresh_when_its_row_exists(prices):
    past = prices["date"].iloc[-3]
    assert check_freshness(prices, expected_last_date=past).passed
    assert check_freshness(prices, expected_last_date=past).details["extends_past_as_of"] is True
    holiday_gap = prices[prices["date"] != past]
    assert not check_freshness(holiday_gap, expected_last_date=past).passed


def test_point_in_time_passes_on_honest_features(prices, features):
    assert check_point_in_time(prices, features).passed


def test_point_in_time_passes_across_a_split(prices):
    split = with_split(prices, prices["date"].iloc[70], 4.0, provider_adjusted=True)
    assert check_point_in_time(split, build_features(split)).passed


@pytest.mark.parametrize("column", ["log_return_1", "rsi_14", "close_window_10"])
def test_point_in_time_fails_on_a_leaking_feature(prices, features, column):
    leaking = features.copy()
    leaking[column] = leaking[column].shift(-1)
    outcome = check_point_in_time(prices, leaking)
    assert not outcome.passed
    assert {mismatch["column"] for mismatch in outcome.details["mismatches"]} == {column}


def test_targets_pass_when_they_describe_the_next_day(prices, features):
    assert check_targets(prices, features).passed


def test_targets_fail_when_misaligned(prices, features):
    misaligned = features.assign(target_next_close=features["close"])
    outcome = check_targets(prices, misaligned)
    assert not outcome.passed
    assert outcome.details["row_count"] == len(features)
    assert outcome.details["target_next_return"] == []
