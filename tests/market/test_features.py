import numpy as np
import pandas as pd
import pytest
from _frames import random_walk_prices, with_split

from mlops_pipeline.market.features import (
    FEATURE_COLUMNS,
    FEATURE_TABLE_COLUMNS,
    WARMUP_ROWS,
    WINDOW_COLUMNS,
    build_features,
    drop_warmup,
)
from mlops_pipeline.market.history import infer_splits


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return random_walk_prices(200)


@pytest.fixture(scope="module")
def features(prices) -> pd.DataFrame:
    return build_features(prices)


def test_table_has_one_row_per_day_and_the_declared_columns(prices, features):
    assert list(features.columns) == FEATURE_TABLE_COLUMNS
    pd.testing.assert_series_equal(features["date"], prices["date"])
    np.testing.assert_array_equal(features["close"], prices["adjusted_close"])


def test_warmup_rows_cover_every_undefined_feature(features):
    numeric = [column for column in FEATURE_COLUMNS if column not in WINDOW_COLUMNS]
    assert features.loc[WARMUP_ROWS - 1, FEATURE_COLUMNS].isna().any()
    ready = drop_warmup(features)
    assert len(ready) == len(features) - WARMUP_ROWS
    assert ready["date"].iloc[0] == features["date"].iloc[WARMUP_ROWS]
    assert not ready[FEATURE_COLUMNS].isna().any().any()
    assert np.isfinite(ready[numeric].to_numpy(dtype=float)).all()


def test_targets_describe_the_next_day(features):
    close = features["close"]
    np.testing.assert_array_equal(features["target_next_close"].iloc[:-1], close.iloc[1:])
    np.testing.assert_allclose(
        features["target_next_return"].iloc[:-1],
        np.log(close.iloc[1:].to_numpy() / close.iloc[:-1].to_numpy()),
    )
    np.testing.assert_array_equal(
        features["target_next_direction"].iloc[:-1].astype(int), (np.diff(close.to_numpy()) > 0).astype(int)
    )
    assert (
        features[["target_next_close", "target_next_return", "target_next_direction"]].iloc[-1].isna().all()
    )


def test_close_window_is_normalized_by_todays_close(features):
    assert features["close_window_10"].iloc[:9].isna().all()
    window = [float(value) for value in features["close_window_10"].iloc[30].split(" ")]
    expected = features["close"].iloc[21:31].to_numpy() / features["close"].iloc[30]
    assert window[-1] == 1.0
    np.testing.assert_allclose(window, expected, atol=5e-7)


def test_return_window_holds_the_last_ten_daily_returns(features):
    assert features["return_window_10"].iloc[:10].isna().all()
    window = [float(value) for value in features["return_window_10"].iloc[30].split(" ")]
    np.testing.assert_allclose(window, features["log_return_1"].iloc[21:31], atol=5e-7)


def test_features_are_point_in_time(prices, features):
    for end in (WARMUP_ROWS, 90, 151):
        truncated = build_features(prices.iloc[:end])
        pd.testing.assert_frame_equal(truncated[FEATURE_COLUMNS], features[FEATURE_COLUMNS].iloc[:end])


@pytest.mark.parametrize("source", ["adjusted", "raw_with_inferred_splits"])
def test_split_leaves_no_discontinuity(prices, features, source):
    ex_date = prices["date"].iloc[120]
    if source == "adjusted":
        split = with_split(prices, ex_date, 4.0, provider_adjusted=True)
    else:
        split = infer_splits(with_split(prices, ex_date, 4.0, provider_adjusted=False)).frame
    split_features = build_features(split)

    np.testing.assert_allclose(split_features["close"], prices["close"] / 4.0, rtol=1e-12)
    np.testing.assert_allclose(split_features["high"], prices["high"] / 4.0, rtol=1e-12)
    np.testing.assert_array_equal(split_features["volume"], prices["volume"] * 4.0)
    assert split_features["log_return_1"].abs().max() < 0.1
    scale_free = ["rsi_14", "bb_pct_b", "log_return_1", "log_return_5", "volatility_20", "target_next_return"]
    pd.testing.assert_frame_equal(split_features[scale_free], features[scale_free], rtol=1e-9)


def test_dividend_adjusted_source_scales_open_high_low_like_close(prices):
    dividend_adjusted = prices.copy()
    dividend_adjusted.loc[:99, "adjusted_close"] = dividend_adjusted.loc[:99, "close"] * 0.98
    result = build_features(dividend_adjusted)
    np.testing.assert_array_equal(result["close"], dividend_adjusted["adjusted_close"])
    np.testing.assert_allclose(result["open"].iloc[:100], prices["open"].iloc[:100] * 0.98, rtol=1e-12)
    np.testing.assert_allclose(result["low"].iloc[100:], prices["low"].iloc[100:], rtol=1e-12)
