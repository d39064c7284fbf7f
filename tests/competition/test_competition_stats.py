"""Backtest statistics against values computed by hand on a four-day series."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlops_pipeline.competition.stats import (
    information_coefficient,
    longest_underwater_run,
    performance_stats,
)

RETURNS = pd.Series([0.10, -0.05, 0.02, -0.10])
# equity 1.1, 1.045, 1.0659, 0.95931; peak 1.1 after day 1
EQUITY_END = 1.1 * 0.95 * 1.02 * 0.90


def test_hand_computed_statistics() -> None:
    stats = performance_stats(RETURNS)
    mean = (0.10 - 0.05 + 0.02 - 0.10) / 4  # -0.0075
    sample_std = math.sqrt((0.1075**2 + 0.0425**2 + 0.0275**2 + 0.0925**2) / 3)
    downside = math.sqrt((0.05**2 + 0.10**2) / 4)
    assert stats.days == 4
    assert stats.total_return == pytest.approx(EQUITY_END - 1)  # -4.069%
    assert stats.annualized_return == pytest.approx(EQUITY_END ** (252 / 4) - 1)
    assert stats.annualized_volatility == pytest.approx(sample_std * math.sqrt(252))
    assert stats.sharpe == pytest.approx(mean / sample_std * math.sqrt(252))  # -1.3694
    assert stats.sharpe == pytest.approx(-1.36945, abs=1e-4)
    assert stats.sortino == pytest.approx(mean / downside * math.sqrt(252))  # -2.1298
    assert stats.max_drawdown == pytest.approx(1 - EQUITY_END / 1.1)  # 12.79%
    assert stats.max_drawdown_duration_days == 3


def test_drawdown_counts_from_the_starting_equity() -> None:
    stats = performance_stats(pd.Series([-0.10, 0.05, 0.10, -0.01]))
    # 0.9, 0.945 below the start (1.0); 1.0395 a new peak; 1.029105 below it
    assert stats.max_drawdown == pytest.approx(0.10)
    assert stats.max_drawdown_duration_days == 2
    assert longest_underwater_run(pd.Series([0.0, -0.1, 0.0, -0.1, -0.2, -0.1, 0.0])) == 3


def test_undefined_ratios_are_nan_not_errors() -> None:
    flat = performance_stats(pd.Series([0.0, 0.0, 0.0]))
    assert flat.total_return == 0 and flat.max_drawdown == 0 and flat.max_drawdown_duration_days == 0
    assert math.isnan(flat.sharpe) and math.isnan(flat.sortino)
    only_gains = performance_stats(pd.Series([0.01, 0.02]))
    assert math.isnan(only_gains.sortino) and only_gains.sharpe > 0
    assert performance_stats(pd.Series([], dtype=float)).days == 0


def test_information_coefficient_is_rank_correlation() -> None:
    outcome = pd.Series([0.01, 0.03, -0.02, 0.00, 0.05])
    assert information_coefficient(outcome**3, outcome) == pytest.approx(1.0)  # monotone transform
    assert information_coefficient(-outcome, outcome) == pytest.approx(-1.0)
    # ranks (1,2,3,4) vs (1,3,2,4): 1 - 6*2/(4*15) = 0.8
    assert information_coefficient(pd.Series([1.0, 2, 3, 4]), pd.Series([1.0, 3, 2, 4])) == pytest.approx(0.8)
    assert math.isnan(information_coefficient(pd.Series([1.0, 1.0, 1.0]), outcome[:3]))
