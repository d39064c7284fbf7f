"""Turning a served prediction into the team's prediction record, and storing it idempotently.

Records follow the predictions contract: one row per ticker and session in the team store at
``predictions/<TICKER>/<as_of_date>.parquet`` (each session its own object, so sessions never
rewrite each other), see ``PREDICTION_COLUMNS``; :func:`read_predictions` gives a ticker's rows.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from mlops_pipeline.objects import ObjectNotFoundError, Objects, session_dates
from mlops_pipeline.team_store import PREDICTION_COLUMNS, prediction_key, predictions_prefix


class PredictionError(ValueError):
    """A served answer does not hold a prediction this platform understands."""


def prediction_sessions(store: Objects, ticker: str) -> list[date]:
    """The sessions with a stored prediction of ``ticker``, oldest first (from the keys alone)."""
    return session_dates(store, predictions_prefix(ticker))


def read_predictions(store: Objects, ticker: str, since: date | None = None) -> pd.DataFrame | None:
    """The stored predictions of ``ticker`` (made on ``since`` or later), oldest first; ``None`` when
    there is none."""
    sessions = [day for day in prediction_sessions(store, ticker) if since is None or day >= since]
    frames = [store.get_parquet(prediction_key(ticker, day)) for day in sessions]
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def interpret(output: dict[str, Any], close: float) -> dict[str, float | int]:
    """Predicted return/close/probability/direction from one served record and today's close."""
    nan = float("nan")
    if "target_next_return_predictions" in output:
        predicted_return = float(output["target_next_return_predictions"])
        predicted_close = close * math.exp(predicted_return)
        prob_up = nan
    elif "target_next_close_predictions" in output:
        predicted_close = float(output["target_next_close_predictions"])
        if predicted_close <= 0:
            raise PredictionError(f"predicted close {predicted_close} is not positive")
        predicted_return = math.log(predicted_close / close)
        prob_up = nan
    elif "target_next_direction_predictions" in output:
        prob_up = float(output["target_next_direction_probabilities_True"])
        return {
            "predicted_return": nan,
            "predicted_close": nan,
            "prob_up": prob_up,
            "predicted_direction": int(bool(output["target_next_direction_predictions"])),
        }
    else:
        raise PredictionError(f"no known target in the served output (keys: {sorted(output)})")
    return {
        "predicted_return": predicted_return,
        "predicted_close": predicted_close,
        "prob_up": prob_up,
        "predicted_direction": int(predicted_return > 0),
    }


def prediction_record(
    *,
    team: str,
    ticker: str,
    as_of: date,
    target_date: date,
    output: dict[str, Any],
    close: float,
    model: dict[str, Any],
    model_name: str,
    latency_ms: float,
) -> dict[str, Any]:
    return {
        "team": team,
        "ticker": ticker,
        "as_of_date": pd.Timestamp(as_of),
        "target_date": pd.Timestamp(target_date),
        **interpret(output, close),
        "model_name": model_name,
        "model_version": str(model.get("version")),
        "run_id": model.get("run_id"),
        "latency_ms": float(latency_ms),
        "created_at": pd.Timestamp(datetime.now(UTC)),
    }


def stored_prediction(store: Objects, ticker: str, as_of: date) -> pd.Series | None:
    """The stored prediction of ``ticker`` made on ``as_of``, if there is one."""
    try:
        return store.get_parquet(prediction_key(ticker, as_of)).iloc[-1]
    except ObjectNotFoundError:
        return None


def store_prediction(store: Objects, ticker: str, record: dict[str, Any]) -> str:
    """Store the record as the prediction of its ``as_of_date`` (a re-run replaces it); its URI."""
    as_of = pd.Timestamp(record["as_of_date"]).date()
    row = pd.DataFrame([record], columns=PREDICTION_COLUMNS)
    return store.put_parquet(
        prediction_key(ticker, as_of), row, {"ticker": ticker, "as_of": as_of.isoformat()}
    )
