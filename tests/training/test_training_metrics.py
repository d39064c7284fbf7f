from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_pipeline.training.metrics import forecast_metrics, information_coefficient, mean_metrics
from mlops_pipeline.training.walk_forward import implied_return

CLOSE = np.array([100.0, 102.0, 101.0, 103.0])
NEXT = np.array([102.0, 101.0, 103.0, 103.5])
ACTUAL = np.log(NEXT / CLOSE)
LAST = np.array([0.01, 0.02, -0.01, 0.02])


def test_regression_metrics_by_hand() -> None:
    predicted_close = np.array([101.0, 103.0, 102.0, 102.0])
    predicted = np.log(predicted_close / CLOSE)
    out = forecast_metrics(CLOSE, ACTUAL, predicted, np.full(4, np.nan), LAST)
    # errors: -1, +2, -1, -1.5
    assert out["mae"] == pytest.approx(5.5 / 4)
    assert out["rmse"] == pytest.approx(math.sqrt((1 + 4 + 1 + 2.25) / 4))
    # predicted up/up/up/down vs actual up/down/up/up
    assert out["directional_accuracy"] == pytest.approx(0.5)
    # naive errors: 2, 1, 2, 0.5
    assert out["naive_mae"] == pytest.approx(5.5 / 4)
    assert out["naive_rmse"] == pytest.approx(math.sqrt((4 + 1 + 4 + 0.25) / 4))
    # naive direction = today's: up/up/down/up vs up/down/up/up
    assert out["naive_directional_accuracy"] == pytest.approx(0.5)
    assert out["mae_skill"] == pytest.approx(0.0)
    assert out["rmse_skill"] == pytest.approx(1 - out["rmse"] / out["naive_rmse"])
    assert out["directional_accuracy_skill"] == pytest.approx(0.0)
    # ranks of predicted returns [4, 2, 3, 1] vs actual returns [4, 1, 3, 2]: 1 - 6 * 2 / (4 * 15)
    assert out["ic"] == pytest.approx(0.8)


def test_a_perfect_forecast_has_full_skill() -> None:
    out = forecast_metrics(CLOSE, ACTUAL, ACTUAL, np.full(4, np.nan), LAST)
    assert out["mae"] == pytest.approx(0.0, abs=1e-12)
    assert out["mae_skill"] == pytest.approx(1.0)
    assert out["directional_accuracy"] == 1.0
    assert out["ic"] == pytest.approx(1.0)


def test_classifier_metrics_have_no_price_error() -> None:
    prob_up = np.array([0.7, 0.4, 0.2, 0.9])  # up, down, down, up vs up/down/up/up
    out = forecast_metrics(CLOSE, ACTUAL, np.full(4, np.nan), prob_up, LAST)
    assert math.isnan(out["mae"]) and math.isnan(out["mae_skill"])
    assert out["directional_accuracy"] == pytest.approx(0.75)
    assert out["directional_accuracy_skill"] == pytest.approx(0.25)


def test_ic_of_a_constant_prediction_is_nan() -> None:
    assert math.isnan(information_coefficient(np.zeros(4), ACTUAL))


def test_mean_over_folds() -> None:
    assert mean_metrics([{"mae": 1.0, "ic": math.nan}, {"mae": 3.0, "ic": math.nan}])["mae"] == 2.0


def test_implied_returns_per_output_kind() -> None:
    close = np.array([100.0, 50.0])
    assert implied_return("target_next_return", np.array([0.1, -0.2]), close).tolist() == [0.1, -0.2]
    closes = implied_return("target_next_close", np.array([110.0, 50.0]), close)
    assert closes == pytest.approx([math.log(1.1), 0.0])
    assert np.isnan(implied_return("target_next_direction", np.array([1.0, 0.0]), close)).all()
