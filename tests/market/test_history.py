import numpy as np
import pandas as pd
import pytest
from _frames import random_walk_prices, with_split

from mlops_pipeline.market.history import infer_splits, merge_history, split_adjust


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return random_walk_prices(260)


def test_split_adjust_is_a_no_op_without_splits(prices):
    pd.testing.assert_frame_equal(split_adjust(prices), prices)


def test_split_adjust_back_adjusts_rows_before_the_ex_date(prices):
    ex_date = prices["date"].iloc[120]
    split = with_split(prices, ex_date, 4.0, provider_adjusted=True)
    adjusted = split_adjust(split)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(adjusted[column], prices[column] / 4.0, rtol=1e-12)
    np.testing.assert_array_equal(adjusted["volume"], prices["volume"] * 4)
    assert (adjusted["split_coefficient"] == 1.0).all()
    pd.testing.assert_frame_equal(split_adjust(adjusted), adjusted)


def test_split_adjust_compounds_successive_splits(prices):
    split = with_split(prices, prices["date"].iloc[60], 2.0, provider_adjusted=True)
    split = with_split(split, prices["date"].iloc[150], 3.0, provider_adjusted=True)
    np.testing.assert_allclose(split_adjust(split)["close"], prices["close"] / 6.0, rtol=1e-12)


def test_merge_appends_new_days_and_keeps_rows_the_window_does_not_cover(prices):
    result = merge_history(prices.iloc[:200], prices.iloc[110:210])
    pd.testing.assert_frame_equal(result.history, prices.iloc[:210].reset_index(drop=True))
    assert result.appended == 10
    assert result.revisions.empty
    assert result.first_date == prices["date"].iloc[0]
    assert result.last_date == prices["date"].iloc[209]


def test_merge_into_empty_history(prices):
    result = merge_history(prices.iloc[:0], prices.iloc[:100])
    pd.testing.assert_frame_equal(result.history, prices.iloc[:100])
    assert result.appended == 100


def test_revised_past_value_wins_and_is_reported(prices):
    incoming = prices.iloc[110:210].copy()
    revised_date = incoming["date"].iloc[5]
    incoming.loc[incoming["date"] == revised_date, "close"] += 0.5
    result = merge_history(prices.iloc[:200], incoming)

    revisions = result.revisions
    assert revisions[["date", "column"]].to_dict("records") == [{"date": revised_date, "column": "close"}]
    original = prices.loc[prices["date"] == revised_date, "close"].item()
    assert revisions["old"].item() == original
    assert revisions["new"].item() == original + 0.5
    assert result.history.loc[result.history["date"] == revised_date, "close"].item() == original + 0.5


def test_unexplained_adjusted_close_change_is_a_revision(prices):
    incoming = prices.iloc[110:210].copy()
    incoming.loc[incoming.index[3], "adjusted_close"] *= 0.9
    result = merge_history(prices.iloc[:200], incoming)
    assert result.revisions["column"].tolist() == ["adjusted_close"]
    assert result.revisions["date"].item() == incoming["date"].iloc[3]


def test_merging_the_same_window_twice_is_idempotent(prices):
    incoming = prices.iloc[110:210].copy()
    incoming.loc[incoming.index[5], "volume"] += 1000
    first = merge_history(prices.iloc[:200], incoming)
    second = merge_history(first.history, incoming)
    pd.testing.assert_frame_equal(second.history, first.history)
    assert second.appended == 0
    assert second.revisions.empty


def test_new_split_in_window_readjusts_older_rows_without_revisions(prices):
    split = with_split(prices, prices["date"].iloc[205], 4.0, provider_adjusted=True)
    stored = prices.iloc[:200]  # fetched before the split: adjusted_close == close
    result = merge_history(stored, split.iloc[110:210])

    pd.testing.assert_frame_equal(result.history, split.iloc[:210].reset_index(drop=True), rtol=1e-12)
    assert result.revisions.empty
    daily_moves = np.diff(np.log(result.history["adjusted_close"]))
    assert np.abs(daily_moves).max() < 0.1


def test_new_dividend_in_window_readjusts_older_rows_without_revisions(prices):
    ex_row, dividend = 205, 0.8
    factor = 1.0 - dividend / prices["close"].iloc[ex_row - 1]
    paid = prices.copy()
    paid.loc[ex_row, "dividend_amount"] = dividend
    paid.loc[: ex_row - 1, "adjusted_close"] = paid.loc[: ex_row - 1, "close"] * factor
    result = merge_history(prices.iloc[:200], paid.iloc[110:210])

    pd.testing.assert_frame_equal(result.history, paid.iloc[:210].reset_index(drop=True), rtol=1e-12)
    assert result.revisions.empty


def test_infer_splits_finds_a_split_and_ignores_a_crash(prices):
    ex_date = prices["date"].iloc[150]
    raw = with_split(prices, ex_date, 4.0, provider_adjusted=False)
    crash = raw["date"] >= raw["date"].iloc[80]
    for column in ("open", "high", "low", "close", "adjusted_close"):
        raw.loc[crash, column] *= 0.7

    inferred = infer_splits(raw)
    assert inferred.splits["date"].tolist() == [ex_date]
    assert inferred.splits["split_coefficient"].tolist() == [4.0]
    coefficients = inferred.frame.set_index("date")["split_coefficient"]
    assert coefficients[ex_date] == 4.0
    assert (coefficients.drop(ex_date) == 1.0).all()


@pytest.mark.parametrize("coefficient", [1.5, 10.0, 0.1, 0.5])
def test_infer_splits_recognizes_common_ratios(prices, coefficient):
    ex_date = prices["date"].iloc[100]
    inferred = infer_splits(with_split(prices, ex_date, coefficient, provider_adjusted=False))
    assert inferred.splits["date"].tolist() == [ex_date]
    assert inferred.splits["split_coefficient"].item() == pytest.approx(coefficient)
