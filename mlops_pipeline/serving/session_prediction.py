"""A session's prediction for one ticker, over REST from the model server that served the session.

:func:`predict_session` holds every decision of the ``<team>/predictions`` asset: no model to ask
(with the reason), a prediction already stored (kept: it is what was traded on), a refusal (the
server now serves another version, or the session has no feature row), or a new stored prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from mlops_pipeline.market.calendar import next_trading_day
from mlops_pipeline.market.features import FEATURE_COLUMNS
from mlops_pipeline.market.store import no_features, read_features
from mlops_pipeline.model_registry import registered_model_name
from mlops_pipeline.objects import ObjectNotFoundError, Objects
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.serving.client import ServingClientError, invoke
from mlops_pipeline.serving.launch import Deployment, is_ready
from mlops_pipeline.serving.predictions import prediction_record, store_prediction, stored_prediction
from mlops_pipeline.team_store import LIVE_DEPLOYMENT_KEY, session_deployment_key


@dataclass(frozen=True)
class Kept:
    """The session's prediction was stored before; a rerun keeps it."""

    model_name: str
    record: Any  # the stored row (a pandas Series)


@dataclass(frozen=True)
class Predicted:
    model_name: str
    record: dict[str, Any]
    uri: str


SessionPrediction = Skipped | Refused | Kept | Predicted  # Skipped: no model server or champion to ask


def _json_value(value: object) -> object:
    """A feature value as JSON: numpy scalars as Python numbers, NaN as null (the server names it)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def predict_session(
    team: str, ticker: str, as_of: date, objects: Objects, store: Objects, token: str | None
) -> SessionPrediction:
    """Predict ``ticker`` after ``as_of``; ``objects`` is the shared store, ``store`` the team's.
    Raises ``ServingClientError`` and ``PredictionError`` when the server's answer is unusable."""
    try:
        deployment = Deployment.from_json(store.get_text(session_deployment_key(as_of)))
    except ObjectNotFoundError:
        return Skipped(f"team {team} had no model server on {as_of} (no champion yet): no prediction")
    model_name = registered_model_name(team, ticker)
    if model_name not in deployment.models:
        return Skipped(
            f"{model_name} has no champion (no model has passed the promotion gate yet): no prediction"
        )
    done = stored_prediction(store, ticker, as_of)
    if done is not None:
        return Kept(model_name, done)
    live = Deployment.stored(store, LIVE_DEPLOYMENT_KEY)
    served = (live.models.get(model_name) or {}).get("version") if live else None
    wanted = deployment.models[model_name].get("version")
    if str(served) != str(wanted):
        # The server only answers with what it serves now: a later model must never predict a past session.
        return Refused(
            f"{model_name} on {as_of}: that session's deployment served version {wanted}, the model "
            f"server now serves {served or 'nothing'}; a later model never predicts a past session"
        )
    features, _ = read_features(objects, ticker, as_of)
    if features is None:
        return Refused(no_features(ticker, as_of))
    rows = features[features["date"].dt.date == as_of]
    if rows.empty:
        return Refused(f"no feature row for {ticker} on {as_of} (latest {features['date'].max().date()})")
    row = rows.iloc[-1]
    record_in = {column: _json_value(row[column]) for column in FEATURE_COLUMNS if column in row.index}
    try:
        outputs, latency_ms = invoke(deployment.endpoint_url, model_name, [record_in], token=token)
    except ServingClientError:
        if not is_ready(deployment.readiness_url):
            return Refused(
                f"{model_name} on {as_of}: team {team}'s model server ({deployment.launcher} "
                f"{deployment.instance_id}, {deployment.endpoint_url}) does not answer: nothing "
                "predicted; run the session again to redeploy it"
            )
        raise
    record = prediction_record(
        team=team,
        ticker=ticker,
        as_of=as_of,
        target_date=next_trading_day(as_of),
        output=outputs[0],
        close=float(row["close"]),
        model=deployment.models[model_name],
        model_name=model_name,
        latency_ms=latency_ms,
    )
    return Predicted(model_name, record, store_prediction(store, ticker, record))
