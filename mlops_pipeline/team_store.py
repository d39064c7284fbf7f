"""Where a team's objects live in the object store, and the columns of its tables.

A team writes only under ``teams/<team>/`` (:func:`team_store` refuses any other key); the keys
below are relative to that prefix. Each session has its own dataset, prediction and deployment
object, so re-materializing one session never rewrites another; the journal and the monitoring
summary are one table each, rewritten whole. A session's backtest is stored under its session, and
the newest one is also the team's current backtest.
"""

from __future__ import annotations

from datetime import date

from mlops_pipeline.objects import Objects

TEAMS_PREFIX = "teams"
DATASETS_PREFIX = "datasets"
PREDICTIONS_PREFIX = "predictions"
MONITORING_PREFIX = "monitoring"

# serving
LIVE_DEPLOYMENT_KEY = "serving/deployment.json"
# trading journal
ORDERS_KEY = "journal/orders.parquet"
POSITIONS_KEY = "journal/positions.parquet"
EQUITY_KEY = "journal/equity.parquet"
# monitoring and backtest
MONITORING_SUMMARY_KEY = f"{MONITORING_PREFIX}/summary.parquet"
BACKTEST_DAILY_KEY = "backtest/daily.parquet"
BACKTEST_CHART_KEY = "backtest/equity_drawdown.png"
SESSION_BACKTESTS_PREFIX = "backtest/sessions"

# What a model predicts; with its dates, what monitoring scores, inside the full record stored per session.
PREDICTED_VALUES: list[str] = ["predicted_return", "predicted_close", "prob_up", "predicted_direction"]
PREDICTION_VALUES: list[str] = ["as_of_date", "target_date", *PREDICTED_VALUES]
PREDICTION_COLUMNS: list[str] = [
    "team",
    "ticker",
    *PREDICTION_VALUES,
    "model_name",
    "model_version",
    "run_id",
    "latency_ms",
    "created_at",
]
ORDER_COLUMNS = (
    "order_id", "client_order_id", "symbol", "side", "type", "time_in_force", "qty", "notional",
    "filled_qty", "filled_avg_price", "status", "submitted_at", "filled_at", "canceled_at", "failed_at",
    "updated_at", "reconciled_on",
)  # fmt: skip
POSITION_COLUMNS = (
    "date", "symbol", "qty", "avg_entry_price", "current_price", "market_value", "cost_basis",
    "unrealized_pl",
)  # fmt: skip
EQUITY_COLUMNS = ("date", "equity", "cash", "long_market_value", "return_since_start")
MONITORING_SUMMARY_COLUMNS: list[str] = [
    "date",
    "ticker",
    "drift_share",
    "drifted_features",
    "mae",
    "rmse",
    "mape",
    "directional_accuracy",
    "naive_mae",
    "n_predictions",
    "status",
]


def team_store(store: Objects, team: str) -> Objects:
    """The team's own part of the object store; writes outside ``teams/<team>/`` are refused."""
    return store.scoped(f"{TEAMS_PREFIX}/{team}")


def dataset_key(ticker: str, session: date) -> str:
    """A ticker's training dataset built on ``session``."""
    return f"{DATASETS_PREFIX}/{ticker}/{session.isoformat()}.parquet"


def predictions_prefix(ticker: str) -> str:
    return f"{PREDICTIONS_PREFIX}/{ticker}"


def prediction_key(ticker: str, session: date) -> str:
    """A ticker's prediction made after ``session``'s close."""
    return f"{predictions_prefix(ticker)}/{session.isoformat()}.parquet"


def session_backtest_key(session: date, suffix: str = "parquet") -> str:
    """The backtest of the champions as they were after ``session`` (``suffix`` parquet: its daily
    table; png: its equity and drawdown chart)."""
    return f"{SESSION_BACKTESTS_PREFIX}/{session.isoformat()}.{suffix}"


SESSION_DEPLOYMENTS_PREFIX = "serving/deployments"


def session_deployment_key(session: date) -> str:
    """The deployment that served ``session``'s predictions."""
    return f"{SESSION_DEPLOYMENTS_PREFIX}/{session.isoformat()}.json"


def run_failure_key(run_id: str) -> str:
    """The record of a failed run of the team (the platform's own failures use the same key under
    ``platform/``)."""
    return f"failures/{run_id}.json"


def monitoring_dir(ticker: str, day: date) -> str:
    return f"{MONITORING_PREFIX}/{ticker}/{day.isoformat()}"


def monitoring_record_key(ticker: str, day: date) -> str:
    """The date's monitoring numbers and the id of its evidently snapshot."""
    return f"{monitoring_dir(ticker, day)}/summary.json"


def reference_marker_key(ticker: str, model_version: str) -> str:
    """The evidently dataset holding a champion version's reference window."""
    return f"{MONITORING_PREFIX}/{ticker}/reference-{model_version}.json"
