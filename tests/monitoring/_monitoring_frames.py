"""Crafted feature and prediction tables and a tiny MLflow registry for the monitoring tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_pipeline.market.calendar import next_trading_day, trading_days

if TYPE_CHECKING:
    from mlops_pipeline.monitoring.report import MonitoringReport

RETURN_INPUTS = [
    "log_return_1",
    "log_return_5",
    "log_return_10",
    "rsi_14",
    "macd_hist",
    "bb_pct_b",
    "volatility_20",
    "volume_z_20",
]
DIRECTION_INPUTS = [
    "log_return_1",
    "log_return_5",
    "log_return_10",
    "rsi_14",
    "macd",
    "macd_signal",
    "bb_pct_b",
    "volatility_20",
    "volume_z_20",
]
NOISE_COLUMNS = sorted({*RETURN_INPUTS, *DIRECTION_INPUTS} - {"log_return_1"})


def crafted_features(
    start: str = "2023-01-03",
    end: str = "2024-07-10",
    seed: int = 0,
    drift_from: str | None = None,
    shift: float = 0.0,
) -> pd.DataFrame:
    """One row per NYSE session: a random-walk close, its log return and standard-normal indicators.

    From ``drift_from`` on, every indicator except the return is shifted by ``shift`` standard deviations.
    """
    days = trading_days(start, end)
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0005, 0.01, len(days))
    close = 100.0 * np.exp(np.cumsum(returns))
    frame = pd.DataFrame({"date": days, "close": close})
    frame["log_return_1"] = np.log(frame["close"]).diff()
    for column in NOISE_COLUMNS:
        frame[column] = rng.normal(0.0, 1.0, len(days))
    if drift_from is not None:
        late = frame["date"] >= pd.Timestamp(drift_from)
        frame.loc[late, NOISE_COLUMNS] += shift
    frame["target_next_close"] = frame["close"].shift(-1)
    return frame


def crafted_predictions(
    features: pd.DataFrame,
    as_of_dates: list[pd.Timestamp],
    noise: float = 0.0,
    seed: int = 1,
    direction: bool = False,
) -> pd.DataFrame:
    """Serving's prediction table: the realized next-session return plus ``noise`` (0 = a perfect model)."""
    rng = np.random.default_rng(seed)
    closes = features.set_index("date")["close"]
    rows = []
    for as_of in as_of_dates:
        target = pd.Timestamp(next_trading_day(as_of))
        actual = np.log(closes[target] / closes[as_of]) if target in closes.index else 0.0
        predicted = float(actual + rng.normal(0.0, noise)) if noise else float(actual)
        prob_up = float(1 / (1 + np.exp(-predicted * 400)))
        rows.append(
            {
                "team": "red",
                "ticker": "AAPL",
                "as_of_date": pd.Timestamp(as_of),
                "target_date": target,
                "predicted_return": np.nan if direction else predicted,
                "predicted_close": np.nan if direction else float(closes[as_of] * np.exp(predicted)),
                "prob_up": prob_up if direction else np.nan,
                "predicted_direction": int(predicted > 0),
                "model_name": "red-AAPL",
                "model_version": "1",
                "run_id": "r",
                "latency_ms": 1.0,
                "created_at": pd.Timestamp("2024-07-10T22:00:00Z"),
            }
        )
    return pd.DataFrame(rows)


def register_champion(
    tracking_uri: str,
    artifact_root: Path,
    team: str,
    ticker: str,
    first_date: str,
    last_date: str,
    oos: pd.DataFrame | None = None,
) -> str:
    """A registered model ``<team>-<ticker>`` whose version 1 (alias champion) points at a run that
    holds only the params monitoring reads (and optionally the OOS predictions). Returns the run id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(team)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(team, artifact_location=(artifact_root / team).as_uri())
    )
    run = client.create_run(experiment_id, tags={"team": team, "ticker": ticker})
    client.log_param(run.info.run_id, "data.first_date", first_date)
    client.log_param(run.info.run_id, "data.last_date", last_date)
    if oos is not None:
        local = artifact_root / f"oos-{run.info.run_id}" / "oos_predictions.parquet"
        local.parent.mkdir(parents=True)
        oos.to_parquet(local)
        client.log_artifact(run.info.run_id, str(local), "evaluation")
    client.set_terminated(run.info.run_id)
    name = f"{team}-{ticker}"
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "champion", version.version)
    return run.info.run_id


def crafted_report(
    as_of: str, ticker: str = "AAPL", drift: bool = True, champion_version: str = "1"
) -> MonitoringReport:
    """A real monitoring report of team red (drifted features, a good model) for ``as_of``."""
    from mlops_pipeline.config.teams import MonitoringSpec, RetrainPolicy
    from mlops_pipeline.monitoring.report import ReportRequest, build_report
    from mlops_pipeline.monitoring.results import Champion
    from mlops_pipeline.monitoring.windows import window_sessions

    features = crafted_features(drift_from="2024-05-01", shift=4.0 if drift else 0.0)
    day = pd.Timestamp(as_of).date()
    sessions = window_sessions(features, day, 20)
    return build_report(
        ReportRequest(
            team="red",
            ticker=ticker,
            as_of=day,
            features=features,
            predictions=crafted_predictions(features, sessions[:-1], noise=0.002),
            champion=Champion(f"red-{ticker}", champion_version, "run", "2023-02-01", "2024-03-28"),
            input_features=RETURN_INPUTS,
            output_feature="target_next_return",
            monitoring=MonitoringSpec(window_days=20),
            retrain=RetrainPolicy(),
        )
    )
