"""The vectorized backtest: strategy weights, costs, benchmark, leakage flag, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _oos import oos_frame

from mlops_pipeline.competition.backtest import BacktestError, run_backtest, target_weights
from mlops_pipeline.config.teams import (
    CostModel,
    DirectionClassifier,
    RiskLimits,
    RotateBestGain,
    ThresholdLongFlat,
)

DATES = ["2024-01-02", "2024-01-03", "2024-01-04"]
RISK = RiskLimits(max_position_pct=0.5, max_gross_exposure=1.0, cash_buffer_pct=0.0)
LONG_FLAT = ThresholdLongFlat.model_validate({"name": "threshold_long_flat", "params": {"threshold": 0.0}})
NO_COSTS = CostModel(commission_bps=0, slippage_bps=0)


def _predictions() -> pd.DataFrame:
    # A is predicted up on days 1-2, B on day 2 only; nobody on day 3.
    a = oos_frame(DATES, "A", [0.10, -0.05, 0.05], predicted_return=[0.01, 0.01, -0.01])
    b = oos_frame(DATES, "B", [-0.10, 0.20, 0.00], predicted_return=[-0.01, 0.02, -0.01])
    return pd.concat([a, b], ignore_index=True)


def test_threshold_long_flat_by_hand() -> None:
    result = run_backtest(_predictions(), LONG_FLAT, RISK, NO_COSTS, capital=1000)
    weights = result.weights
    assert weights.loc["2024-01-02"].tolist() == [0.5, 0.0]  # capped at max_position_pct
    assert weights.loc["2024-01-03"].tolist() == [0.5, 0.5]
    assert weights.loc["2024-01-04"].tolist() == [0.0, 0.0]
    daily = result.daily
    assert daily["gross_return"].tolist() == pytest.approx([0.05, 0.5 * -0.05 + 0.5 * 0.20, 0.0])
    assert daily["turnover"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert daily["equity"].iloc[-1] == pytest.approx(1000 * 1.05 * 1.075)
    assert result.stats.total_return == pytest.approx(1.05 * 1.075 - 1)
    assert result.hit_rate == 1.0  # both invested days gained
    assert result.turnover == pytest.approx(2.0 / 3)
    assert result.exposure == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # buy and hold: equal dollars in A and B, never rebalanced, no costs
    a_growth, b_growth = 1.1 * 0.95 * 1.05, 0.9 * 1.2 * 1.0
    assert result.benchmark.total_return == pytest.approx((a_growth + b_growth) / 2 - 1)
    assert result.fees == 0 and result.slippage == 0


def test_costs_reduce_returns_by_turnover_times_bps() -> None:
    costs = CostModel(commission_bps=10, slippage_bps=5)
    free = run_backtest(_predictions(), LONG_FLAT, RISK, NO_COSTS, capital=1000)
    paid = run_backtest(_predictions(), LONG_FLAT, RISK, costs, capital=1000)
    drag = free.daily["net_return"] - paid.daily["net_return"]
    assert drag.tolist() == pytest.approx([0.5 * 0.0015, 0.5 * 0.0015, 1.0 * 0.0015])
    expected_end = 1000 * (1 + 0.05 - 0.00075) * (1 + 0.075 - 0.00075) * (1 - 0.0015)
    assert paid.daily["equity"].iloc[-1] == pytest.approx(expected_end)
    assert paid.stats.total_return < free.stats.total_return
    # commission and slippage in currency: equity before each day x turnover x bps
    before = [1000, 1000 * (1.05 - 0.00075), 1000 * (1.05 - 0.00075) * (1.075 - 0.00075)]
    assert paid.fees == pytest.approx(
        sum(e * t * 0.0010 for e, t in zip(before, [0.5, 0.5, 1.0], strict=True))
    )
    assert paid.slippage == pytest.approx(paid.fees / 2)


def test_rotate_best_gain_holds_the_best_predictions() -> None:
    strategy = RotateBestGain.model_validate(
        {"name": "rotate_best_gain", "params": {"threshold": 0.005, "max_holdings": 1}}
    )
    weights = target_weights(_predictions(), strategy, RISK)
    assert weights.to_numpy().tolist() == [[0.5, 0.0], [0.0, 0.5], [0.0, 0.0]]
    unlimited = RiskLimits(max_position_pct=1.0, max_gross_exposure=0.95, cash_buffer_pct=0.02)
    assert target_weights(_predictions(), strategy, unlimited).loc["2024-01-03", "B"] == pytest.approx(0.95)


def test_direction_classifier_uses_prob_up() -> None:
    frame = oos_frame(DATES, "A", [0.01, 0.01, 0.01], prob_up=[0.7, 0.5, 0.56])
    strategy = DirectionClassifier.model_validate({"name": "direction_classifier"})  # min_confidence 0.55
    weights = target_weights(frame, strategy, RISK)
    assert weights["A"].tolist() == [0.5, 0.0, 0.5]
    with pytest.raises(BacktestError, match="needs predicted_return"):
        run_backtest(frame, LONG_FLAT, RISK, NO_COSTS)


def test_min_holdings_selects_the_best_ranked_whatever_the_signal() -> None:
    frame = pd.concat(
        [
            oos_frame(DATES, "A", [0.01, 0.01, 0.01], predicted_return=[0.01, -0.03, -0.02]),
            oos_frame(DATES, "B", [0.01, 0.01, 0.01], predicted_return=[-0.01, 0.02, -0.01]),
        ],
        ignore_index=True,
    )
    strategy = RotateBestGain.model_validate(
        {"name": "rotate_best_gain", "params": {"threshold": 0.015, "max_holdings": 2, "min_holdings": 1}}
    )
    # day 1: nothing beats the threshold, A ranks first; day 2: B passes it; day 3: B ranks first
    assert target_weights(frame, strategy, RISK).to_numpy().tolist() == [[0.5, 0.0], [0.0, 0.5], [0.0, 0.5]]


def test_overlapping_folds_keep_the_latest() -> None:
    older = oos_frame(DATES, "A", [0.01] * 3, predicted_return=[0.01] * 3, fold=0)
    newer = oos_frame(DATES[1:], "A", [0.01] * 2, predicted_return=[-0.01] * 2, fold=1)
    result = run_backtest(pd.concat([newer, older]), LONG_FLAT, RISK, NO_COSTS)
    assert result.weights["A"].tolist() == [0.5, 0.0, 0.0]


def _random_walk(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2022-01-03", periods=n).strftime("%Y-%m-%d").tolist()
    actual = rng.normal(0.0005, 0.015, n)
    return oos_frame(dates, "A", np.expm1(actual).tolist(), predicted_return=rng.normal(0, 0.01, n).tolist())


def test_leakage_flag() -> None:
    honest = run_backtest(_random_walk(500, seed=3), LONG_FLAT, RISK, NO_COSTS)
    assert not honest.leakage_suspected
    assert abs(honest.information_coefficient) < 0.15
    leaky = _random_walk(500, seed=3)
    leaky["predicted_return"] = leaky["actual_return"]  # the model saw tomorrow's return
    flagged = run_backtest(leaky, LONG_FLAT, RISK, NO_COSTS)
    assert flagged.leakage_suspected
    assert flagged.information_coefficient == pytest.approx(1.0)
    assert any(reason.startswith("out-of-sample Sharpe") for reason in flagged.leakage_reasons)
    assert any(
        reason.startswith("information coefficient 1.000 > 0.15") for reason in flagged.leakage_reasons
    )
    summary = flagged.summary()
    assert summary["leakage_suspected"] is True and summary["tickers"] == ["A"]


def test_bad_input_is_named() -> None:
    with pytest.raises(BacktestError, match=r"lack column\(s\) \['actual_return'\]"):
        run_backtest(_predictions().drop(columns="actual_return"), LONG_FLAT, RISK, NO_COSTS)
    with pytest.raises(BacktestError, match="empty"):
        run_backtest(_predictions().iloc[0:0], LONG_FLAT, RISK, NO_COSTS)
    no_trades = _predictions().assign(predicted_return=-1.0)
    result = run_backtest(no_trades, LONG_FLAT, RISK, NO_COSTS)
    assert result.stats.total_return == 0 and math.isnan(result.hit_rate)
