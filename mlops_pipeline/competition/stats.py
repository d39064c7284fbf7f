"""Performance statistics of a daily return series (LEAN's statistics block), vectorized.

Conventions: ``returns`` are simple daily returns of a strategy, one per trading day, oldest
first; 252 trading days a year; risk-free rate 0. Ratios that are undefined (a flat series, a
single day, no losing days for Sortino) are ``NaN``, never a division by zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True)
class PerformanceStats:
    """Return and risk of one daily return series. Fractions, not percent."""

    days: int
    total_return: float
    annualized_return: float
    annualized_volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float  # positive fraction: 0.2 = the equity fell 20% below its previous peak
    max_drawdown_duration_days: int  # longest run of trading days spent below a previous peak

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def equity_curve(returns: pd.Series, start: float = 1.0) -> pd.Series:
    """Compounded equity after each day's return, starting from ``start``."""
    return start * (1.0 + returns.fillna(0.0)).cumprod()


def drawdown(equity: pd.Series, start: float = 1.0) -> pd.Series:
    """Fraction below the running peak (<= 0), the peak including the starting ``start`` equity."""
    peak = np.maximum(equity.cummax(), start)
    return equity / peak - 1.0


def longest_underwater_run(drawdowns: pd.Series) -> int:
    """Most consecutive days with a drawdown below zero."""
    underwater = (drawdowns < 0).to_numpy()
    if not underwater.any():
        return 0
    # label every run of equal values, then measure the runs that are under water
    run_ids = np.concatenate([[0], np.cumsum(underwater[1:] != underwater[:-1])])
    lengths = np.bincount(run_ids[underwater])
    return int(lengths.max())


def performance_stats(returns: pd.Series) -> PerformanceStats:
    """Total/annualized return, volatility, Sharpe, Sortino and drawdowns of daily ``returns``."""
    clean = returns.astype(float).fillna(0.0)
    days = len(clean)
    if days == 0:
        nan = float("nan")
        return PerformanceStats(0, 0.0, 0.0, nan, nan, nan, 0.0, 0)
    equity = equity_curve(clean)
    total = float(equity.iloc[-1] - 1.0)
    annualized = float((1.0 + total) ** (TRADING_DAYS_PER_YEAR / days) - 1.0) if total > -1 else -1.0
    mean = float(clean.mean())
    std = float(clean.std(ddof=1)) if days > 1 else float("nan")
    sharpe = mean / std * np.sqrt(TRADING_DAYS_PER_YEAR) if std > 0 else float("nan")
    downside = float(np.sqrt(np.mean(np.minimum(clean.to_numpy(), 0.0) ** 2)))
    sortino = mean / downside * np.sqrt(TRADING_DAYS_PER_YEAR) if downside > 0 else float("nan")
    drawdowns = drawdown(equity)
    return PerformanceStats(
        days=days,
        total_return=total,
        annualized_return=annualized,
        annualized_volatility=float(std * np.sqrt(TRADING_DAYS_PER_YEAR)),
        sharpe=float(sharpe),
        sortino=float(sortino),
        max_drawdown=float(-drawdowns.min()),
        max_drawdown_duration_days=longest_underwater_run(drawdowns),
    )


def information_coefficient(signal: pd.Series, outcome: pd.Series) -> float:
    """Spearman rank correlation of a prediction signal with the realised outcome (pooled rows)."""
    frame = pd.DataFrame({"signal": signal, "outcome": outcome}).dropna()
    if len(frame) < 3 or frame["signal"].nunique() < 2 or frame["outcome"].nunique() < 2:
        return float("nan")
    ranks = frame.rank()
    return float(ranks["signal"].corr(ranks["outcome"]))
