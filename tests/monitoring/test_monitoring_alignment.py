from __future__ import annotations

import pandas as pd
import pytest
from _monitoring_frames import crafted_features, crafted_predictions

from mlops_pipeline.monitoring.alignment import align_predictions
from mlops_pipeline.monitoring.performance import summarize_performance
from mlops_pipeline.monitoring.windows import MonitoringInputError, drift_columns, window_sessions

AS_OF = pd.Timestamp("2024-07-10")


@pytest.fixture
def features() -> pd.DataFrame:
    return crafted_features(start="2024-05-01", end="2024-07-10")


def test_targets_align_across_the_independence_day_holiday(features: pd.DataFrame) -> None:
    sessions = window_sessions(features, AS_OF.date(), 10)
    assert pd.Timestamp("2024-07-04") not in sessions  # the holiday is not a session
    predicted_days = [day for day in sessions if day != pd.Timestamp("2024-07-01")]
    predictions = crafted_predictions(features, predicted_days)  # a perfect model

    aligned = align_predictions(predictions, features, sessions)

    closes = features.set_index("date")["close"]
    row = aligned.frame.set_index("as_of_date").loc[pd.Timestamp("2024-07-03")]
    assert row["target_date"] == pd.Timestamp("2024-07-05")
    assert row["actual_close"] == pytest.approx(closes[pd.Timestamp("2024-07-05")])
    assert row["naive_close"] == pytest.approx(closes[pd.Timestamp("2024-07-03")])
    # The day before the missing one still meets its own target: no shift by rows.
    before_gap = aligned.frame.set_index("as_of_date").loc[pd.Timestamp("2024-06-28")]
    assert before_gap["actual_close"] == pytest.approx(closes[pd.Timestamp("2024-07-01")])
    assert aligned.missing_days == ["2024-07-01"]
    assert aligned.pending_days == ["2024-07-10"]  # its target session has not closed yet
    assert len(aligned.frame) == 8

    performance = summarize_performance(aligned, "regression")
    assert performance.mae == pytest.approx(0.0, abs=1e-9)  # perfect predictions only when aligned
    assert performance.directional_accuracy == 1.0
    assert performance.naive_mae is not None and performance.naive_mae > 0
    assert performance.missing_days == ["2024-07-01"]


def test_a_row_shifted_join_would_have_been_caught(features: pd.DataFrame) -> None:
    sessions = window_sessions(features, AS_OF.date(), 10)
    predictions = crafted_predictions(features, sessions[:-1])
    # Serving wrote the target as the calendar day after the as-of date: 2024-07-04 is no session.
    predictions.loc[predictions["as_of_date"] == pd.Timestamp("2024-07-03"), "target_date"] = pd.Timestamp(
        "2024-07-04"
    )
    aligned = align_predictions(predictions, features, sessions)
    assert aligned.unmatched_days == ["2024-07-03"]
    assert pd.Timestamp("2024-07-03") not in set(aligned.frame["as_of_date"])


def test_no_predictions_lists_every_day_as_missing_and_says_not_enough_data(features: pd.DataFrame) -> None:
    sessions = window_sessions(features, AS_OF.date(), 10)
    performance = summarize_performance(align_predictions(None, features, sessions), "regression")
    assert performance.note == "not enough data (n=0)"
    assert performance.mae is None and performance.error is None
    assert len(performance.missing_days) == 10


def test_few_predictions_give_no_numbers(features: pd.DataFrame) -> None:
    sessions = window_sessions(features, AS_OF.date(), 10)
    aligned = align_predictions(crafted_predictions(features, sessions[-4:-1]), features, sessions)
    performance = summarize_performance(aligned, "regression")
    assert performance.note == "not enough data (n=3)"
    assert performance.directional_accuracy is None


def test_direction_model_scores_directions_against_today_as_tomorrow(features: pd.DataFrame) -> None:
    sessions = window_sessions(features, AS_OF.date(), 10)
    predictions = crafted_predictions(features, sessions, direction=True)
    performance = summarize_performance(align_predictions(predictions, features, sessions), "direction")
    assert performance.mae is None  # no price from a direction model
    assert performance.directional_accuracy == 1.0
    assert performance.error == 0.0
    naive = performance.naive_directional_accuracy
    assert naive is not None and 0.0 <= naive <= 1.0
    assert performance.naive_mae is not None


def test_bad_prediction_table_names_the_missing_column(features: pd.DataFrame) -> None:
    sessions = window_sessions(features, AS_OF.date(), 10)
    predictions = crafted_predictions(features, sessions).drop(columns=["target_date"])
    with pytest.raises(MonitoringInputError, match=r"predictions: missing column.*target_date"):
        align_predictions(predictions, features, sessions)


def test_timeseries_inputs_are_monitored_through_their_daily_series() -> None:
    inputs = ["return_window_10", "close_window_10", "volatility_20", "volume_z_20"]
    assert drift_columns(inputs) == ["log_return_1", "log_return_10", "volatility_20", "volume_z_20"]
    assert drift_columns(["log_return_1", "return_window_10"]) == ["log_return_1"]
    with pytest.raises(MonitoringInputError, match="'target_next_close'"):
        drift_columns(["target_next_close"])
