"""The leakage flag on recorded real prices (the S&P 500, 1999-2018, bundled with ``arch``) and on
the calibrated synthetic market: quiet for an honest forecast, raised when the forecast saw the
target. The recording goes through the platform's writer and the sandbox's recorded market."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.competition.backtest import run_backtest
from mlops_pipeline.config.teams import CostModel, RiskLimits, ThresholdLongFlat
from mlops_pipeline.market.features import build_features, drop_warmup
from mlops_pipeline.market.recording import load_recordings, write_recording
from mlops_pipeline.market.reference_history import SP500_SYMBOL, sp500_history
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.recorded import RecordedMarket

pytestmark = pytest.mark.unit
LAST = date(2018, 12, 31)
RISK = RiskLimits(max_position_pct=1.0, max_gross_exposure=1.0, cash_buffer_pct=0.0)
LONG_FLAT = ThresholdLongFlat.model_validate({"name": "threshold_long_flat", "params": {"threshold": 0.0}})
COSTS = CostModel(commission_bps=0, slippage_bps=5)


def _recorded_spx(folder: Path) -> pd.DataFrame:
    write_recording(sp500_history(), folder / f"{SP500_SYMBOL}.csv")
    return RecordedMarket(load_recordings(folder)).history(SP500_SYMBOL, LAST)


def _forecasts(history: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """An honest forecast (the trailing 20-session mean return) in the out-of-sample layout."""
    features = drop_warmup(build_features(history)).dropna(subset=["target_next_return"])
    honest = features["log_return_1"].rolling(20).mean()
    return pd.DataFrame(
        {
            "date": features["date"],
            "ticker": ticker,
            "fold": 1,
            "y_true": features["target_next_return"],
            "y_pred": honest,
            "prob_up": np.nan,
            "close": features["close"],
            "actual_return": features["target_next_return"],
            "predicted_return": honest,
        }
    ).dropna(subset=["predicted_return"])


@pytest.mark.parametrize("series", ["recorded S&P 500", "synthetic AAPL"])
def test_the_leakage_flag_is_quiet_for_honest_forecasts_and_raised_for_the_target(
    series: str, tmp_path: Path
) -> None:
    if series == "recorded S&P 500":
        history, ticker = _recorded_spx(tmp_path), "SPX"
        assert len(history) >= 2000 and history["date"].iloc[-1].date() == LAST
    else:
        history, ticker = SyntheticMarket().history("AAPL", LAST).tail(5000), "AAPL"
    forecasts = _forecasts(history, ticker)

    honest = run_backtest(forecasts, LONG_FLAT, RISK, COSTS)
    assert not honest.leakage_suspected, honest.leakage_reasons
    assert abs(honest.information_coefficient) < 0.1

    leaked = forecasts.assign(predicted_return=forecasts["actual_return"])  # the model saw tomorrow
    flagged = run_backtest(leaked, LONG_FLAT, RISK, COSTS)
    assert flagged.leakage_suspected
    assert any(reason.startswith("information coefficient") for reason in flagged.leakage_reasons)
