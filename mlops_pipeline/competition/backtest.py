"""Vectorized backtest of a team's strategy over its champions' walk-forward out-of-sample predictions.

Model: at the close of each date the strategy picks target weights from that date's predictions;
the portfolio is rebalanced to them at the close and earns each ticker's next-session return
(``actual_return`` of the OOS frame is the log return to the next session). Trading costs are
``turnover * (commission_bps + slippage_bps) / 10_000`` of equity on the rebalancing day, turnover
being the one-way sum of weight changes (entering from cash counts). The benchmark holds equal
dollar amounts of the same tickers from the first date on, never rebalanced, without costs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from mlops_pipeline.competition.stats import (
    PerformanceStats,
    drawdown,
    information_coefficient,
    performance_stats,
)
from mlops_pipeline.config.teams import CostModel, RiskLimits, StrategySpec

OOS_COLUMNS = ("date", "ticker", "actual_return", "predicted_return", "prob_up")
LEAKAGE_SHARPE = 3.0
LEAKAGE_IC = 0.15
DEFAULT_CAPITAL = 100_000.0


class BacktestError(ValueError):
    """The predictions cannot be backtested (missing columns, no rows, wrong model type)."""


@dataclass(frozen=True)
class BacktestResult:
    """Daily series and statistics of one backtest."""

    daily: pd.DataFrame  # date, gross_return, costs, net_return, equity, drawdown, exposure, turnover,
    # benchmark_return, benchmark_equity, benchmark_drawdown
    weights: pd.DataFrame  # date x ticker target weights
    stats: PerformanceStats
    benchmark: PerformanceStats
    hit_rate: float  # share of invested days whose gross return was positive
    turnover: float  # average daily one-way turnover (fraction of equity)
    fees: float  # commission paid, in currency
    slippage: float  # slippage paid, in currency
    exposure: float  # average gross exposure
    information_coefficient: float
    leakage_reasons: list[str] = field(default_factory=list)
    tickers: list[str] = field(default_factory=list)

    @property
    def leakage_suspected(self) -> bool:
        return bool(self.leakage_reasons)

    def summary(self) -> dict[str, object]:
        """Every statistic as JSON-friendly values (for manifests, metadata and the leaderboard)."""
        return {
            **self.stats.as_dict(),
            "hit_rate": self.hit_rate,
            "turnover": self.turnover,
            "fees": self.fees,
            "slippage": self.slippage,
            "exposure": self.exposure,
            "information_coefficient": self.information_coefficient,
            "leakage_suspected": self.leakage_suspected,
            "leakage_reasons": list(self.leakage_reasons),
            "benchmark": asdict(self.benchmark),
            "first_date": str(self.daily["date"].iloc[0].date()),
            "last_date": str(self.daily["date"].iloc[-1].date()),
            "tickers": list(self.tickers),
        }


def prepare_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the OOS columns and keep one row per (date, ticker): the latest fold's when folds overlap."""
    missing = [column for column in OOS_COLUMNS if column not in frame.columns]
    if missing:
        raise BacktestError(f"out-of-sample predictions lack column(s) {missing}")
    if frame.empty:
        raise BacktestError("out-of-sample predictions are empty")
    data = frame.copy()
    data["date"] = pd.to_datetime(data["date"]).dt.tz_localize(None).dt.normalize()
    order = ["date", "ticker", "fold"] if "fold" in data.columns else ["date", "ticker"]
    data = data.sort_values(order, kind="stable").drop_duplicates(["date", "ticker"], keep="last")
    return data.reset_index(drop=True)


def _wide(data: pd.DataFrame, column: str) -> pd.DataFrame:
    return data.pivot(index="date", columns="ticker", values=column).sort_index()


def target_weights(predictions: pd.DataFrame, strategy: StrategySpec, risk: RiskLimits) -> pd.DataFrame:
    """Target weights per date (rows) and ticker (columns) chosen by the team's strategy.

    The ``min_holdings`` best-ranked tickers are selected whatever their signal. Selected tickers
    share the usable exposure (``min(max_gross_exposure, 1 - cash_buffer_pct)``) equally, each
    capped at ``max_position_pct``; a missing prediction means no position.
    """
    if strategy.name == "direction_classifier":
        signal = _wide(predictions, "prob_up")
        if signal.isna().all().all():
            raise BacktestError("strategy direction_classifier needs prob_up, but every prob_up is NaN")
        selected = signal >= strategy.params.min_confidence
    else:
        signal = _wide(predictions, "predicted_return")
        if signal.isna().all().all():
            raise BacktestError(
                f"strategy {strategy.name} needs predicted_return, but every predicted_return is NaN "
                "(a direction classifier?)"
            )
        selected = signal > strategy.params.threshold
        if strategy.name == "rotate_best_gain":
            rank = signal.where(selected).rank(axis=1, ascending=False, method="first")
            selected &= rank <= strategy.params.max_holdings
    best_ranked = signal.rank(axis=1, ascending=False, method="first") <= strategy.params.min_holdings
    selected |= best_ranked
    usable = min(risk.max_gross_exposure, 1.0 - risk.cash_buffer_pct)
    count = selected.sum(axis=1)
    per_position = np.minimum(risk.max_position_pct, usable / count.where(count > 0))
    return selected.astype(float).mul(per_position.fillna(0.0), axis=0)


def run_backtest(
    predictions: pd.DataFrame,
    strategy: StrategySpec,
    risk: RiskLimits,
    costs: CostModel,
    capital: float = DEFAULT_CAPITAL,
) -> BacktestResult:
    """Feed OOS ``predictions`` (all tickers, long format) through the strategy; see the module doc."""
    data = prepare_predictions(predictions)
    weights = target_weights(data, strategy, risk)
    asset_returns = np.expm1(_wide(data, "actual_return")).reindex_like(weights).fillna(0.0)

    gross = (weights * asset_returns).sum(axis=1)
    turnover = weights.diff().abs().sum(axis=1)
    turnover.iloc[0] = weights.iloc[0].abs().sum()
    commission_rate = costs.commission_bps / 10_000
    slippage_rate = costs.slippage_bps / 10_000
    cost = turnover * (commission_rate + slippage_rate)
    net = gross - cost
    equity = capital * (1.0 + net).cumprod()
    equity_before = equity.shift(1, fill_value=capital)

    benchmark_equity = capital * (1.0 + asset_returns).cumprod().mean(axis=1)
    benchmark_returns = benchmark_equity.pct_change()
    benchmark_returns.iloc[0] = benchmark_equity.iloc[0] / capital - 1.0

    exposure = weights.sum(axis=1)
    invested = exposure > 0
    daily = pd.DataFrame(
        {
            "date": weights.index,
            "gross_return": gross.to_numpy(),
            "costs": cost.to_numpy(),
            "net_return": net.to_numpy(),
            "equity": equity.to_numpy(),
            "drawdown": drawdown(equity, capital).to_numpy(),
            "exposure": exposure.to_numpy(),
            "turnover": turnover.to_numpy(),
            "benchmark_return": benchmark_returns.to_numpy(),
            "benchmark_equity": benchmark_equity.to_numpy(),
            "benchmark_drawdown": drawdown(benchmark_equity, capital).to_numpy(),
        }
    )
    stats = performance_stats(net)
    signal_column = "prob_up" if strategy.name == "direction_classifier" else "predicted_return"
    ic = information_coefficient(data[signal_column], data["actual_return"])
    reasons = []
    if stats.sharpe > LEAKAGE_SHARPE:
        reasons.append(f"out-of-sample Sharpe {stats.sharpe:.2f} > {LEAKAGE_SHARPE:g}")
    if ic > LEAKAGE_IC:
        reasons.append(f"information coefficient {ic:.3f} > {LEAKAGE_IC:g}")
    return BacktestResult(
        daily=daily,
        weights=weights,
        stats=stats,
        benchmark=performance_stats(benchmark_returns),
        hit_rate=float((gross[invested] > 0).mean()) if invested.any() else float("nan"),
        turnover=float(turnover.mean()),
        fees=float((equity_before * turnover * commission_rate).sum()),
        slippage=float((equity_before * turnover * slippage_rate).sum()),
        exposure=float(exposure.mean()),
        information_coefficient=ic,
        leakage_reasons=reasons,
        tickers=[str(ticker) for ticker in weights.columns],
    )
