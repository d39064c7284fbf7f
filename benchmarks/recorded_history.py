"""The shipped models on recorded real history, next to the synthetic market.

The real series is the S&P 500 index, daily from 1999-01-04 to 2018-12-31 (5,031 sessions), as
bundled with the ``arch`` package (a dev dependency; nothing is downloaded at run time). It is
written as a recording (``SPX.csv``, AlphaVantage's daily-adjusted CSV) with the platform's own
writer, read back through the sandbox's recorded market, and fed through the platform's own
features, walk-forward evaluation and backtest. The synthetic market's AAPL over the same sessions
runs alongside.

For each shipped model (the base overlay's ``return_mlp`` with its ``threshold_long_flat``
strategy, red's timeseries CNN with ``rotate_best_gain``, blue's direction classifier): a
walk-forward evaluation over the whole series (``FOLDS`` expanding-window folds of ``TEST_DAYS``
sessions, the team's purge gap), giving skill vs the naive forecast and directional accuracy, then
the team's strategy over the out-of-sample predictions, net of the team's costs, against
buy-and-hold over the same sessions; the leakage flag as the leaderboard shows it.

Writes benchmarks/results/recorded_history.json and .md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_pipeline.competition.backtest import run_backtest
from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.config.teams import EvaluationSpec, TeamConfig, load_teams
from mlops_pipeline.market.features import build_features
from mlops_pipeline.market.recording import load_recordings, write_recording
from mlops_pipeline.market.reference_history import SP500_SYMBOL, sp500_history
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.recorded import RecordedMarket
from mlops_pipeline.training.dataset import build_training_dataset
from mlops_pipeline.training.walk_forward import cross_validate_predictions, evaluation_frame

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
FOLDS, TEST_DAYS = 5, 200
FIRST, LAST = date(1999, 1, 4), date(2018, 12, 31)


def shipped_teams(scratch: Path) -> dict[str, TeamConfig]:
    """red, blue, and ``base``: the base overlay alone (the return MLP no shipped team overrides)."""
    teams_dir = scratch / "teams"
    shutil.copytree(ROOT / "teams", teams_dir)
    (teams_dir / "base_only.yaml").write_text("display_name: Base defaults\n", encoding="utf-8")
    return load_teams(teams_dir, ROOT / "ludwig_configs")


def evaluate(team: TeamConfig, ticker: str, history: pd.DataFrame) -> dict[str, object]:
    ludwig = load_ludwig_config(ROOT / "ludwig_configs" / team.model.ludwig_config)
    features = build_features(history)
    dataset = build_training_dataset(features, ludwig, None)
    spec = EvaluationSpec(folds=FOLDS, test_days=TEST_DAYS, purge_days=team.evaluation.purge_days)
    started = time.perf_counter()
    frame = evaluation_frame(dataset, features)
    predictions, metrics = cross_validate_predictions(frame, ludwig, spec, ticker)
    seconds = time.perf_counter() - started
    backtest = run_backtest(predictions, team.strategy, team.risk, team.costs)
    oos = backtest.daily
    return {
        "model": team.model.ludwig_config,
        "strategy": team.strategy.name,
        "sessions": len(dataset),
        "oos_sessions": len(predictions),
        "oos_period": f"{oos['date'].iloc[0].date()}..{oos['date'].iloc[-1].date()}",
        "mae_skill": metrics["mae_skill"],
        "directional_accuracy": metrics["directional_accuracy"],
        "naive_directional_accuracy": metrics["naive_directional_accuracy"],
        "directional_accuracy_skill": metrics["directional_accuracy_skill"],
        "information_coefficient": backtest.information_coefficient,
        "net_total_return": backtest.stats.total_return,
        "net_sharpe": backtest.stats.sharpe,
        "net_max_drawdown": backtest.stats.max_drawdown,
        "buy_and_hold_total_return": backtest.benchmark.total_return,
        "buy_and_hold_sharpe": backtest.benchmark.sharpe,
        "exposure": backtest.exposure,
        "costs_bps": team.costs.commission_bps + team.costs.slippage_bps,
        "leakage_flag": "; ".join(backtest.leakage_reasons) or "quiet",
        "seconds": seconds,
    }


def _skill(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.4f}"  # a direction classifier predicts no price


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        write_recording(sp500_history(), scratch / "recording" / f"{SP500_SYMBOL}.csv")
        market = RecordedMarket(load_recordings(scratch / "recording"), SyntheticMarket())
        series = {"SPX (recorded)": market.history(SP500_SYMBOL, LAST)}
        synthetic = market.history("AAPL", LAST)
        same_sessions = synthetic["date"] >= pd.Timestamp(FIRST)
        series["AAPL (synthetic)"] = synthetic[same_sessions].reset_index(drop=True)
        teams = shipped_teams(scratch)
        rows = []
        for label, history in series.items():
            returns = np.log(history["adjusted_close"]).diff().dropna()
            for name in ("base_only", "red", "blue"):
                row = {"series": label, "team": name, **evaluate(teams[name], label.split()[0], history)}
                row["lag1_autocorrelation"] = float(returns.autocorr(1))
                rows.append(row)
                print(json.dumps(row, default=str), flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "folds": FOLDS,
        "test_days": TEST_DAYS,
    }
    document = json.dumps({"meta": meta, "rows": rows}, indent=2, default=str)
    (RESULTS / "recorded_history.json").write_text(document)
    header = (
        "| series | model (team) | OOS sessions | MAE skill | dir. acc. (naive) | IC | net return "
        "| net Sharpe | buy & hold return | B&H Sharpe | exposure | leakage flag |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['series']} | {r['model']} ({r['team']}) | {r['oos_sessions']} | {_skill(r['mae_skill'])} "
        f"| {r['directional_accuracy']:.3f} ({r['naive_directional_accuracy']:.3f}) "
        f"| {r['information_coefficient']:.3f} | {r['net_total_return']:.1%} | {r['net_sharpe']:.2f} "
        f"| {r['buy_and_hold_total_return']:.1%} | {r['buy_and_hold_sharpe']:.2f} | {r['exposure']:.2f} "
        f"| {r['leakage_flag']} |"
        for r in rows
    ]
    intro = (
        "# Shipped models on recorded history\n\n"
        f"Walk-forward: {FOLDS} expanding folds of {TEST_DAYS} sessions; backtests net of each team's costs; "
        f"{meta['machine']}. MAE skill is 1 - MAE / naive MAE (> 0 beats 'tomorrow = today'; a direction "
        "classifier has no price error).\n\n"
    )
    (RESULTS / "recorded_history.md").write_text(intro + header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
