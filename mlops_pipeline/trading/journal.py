"""The per-team trading journal: orders, positions and equity pulled from the broker.

Objects in the team store (each one parquet, rewritten atomically, one row per key):

* ``journal/orders.parquet``: one row per broker order id, updated as its status changes;
* ``journal/positions.parquet``: one row per (date, symbol) held at reconciliation;
* ``journal/equity.parquet``: one row per date: ``date, equity, cash, long_market_value,
  return_since_start`` (relative to the first journaled equity).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from mlops_pipeline.objects import ObjectNotFoundError, Objects
from mlops_pipeline.team_store import EQUITY_COLUMNS, ORDER_COLUMNS, POSITION_COLUMNS
from mlops_pipeline.trading.broker_client import AccountSnapshot

PROBLEM_STATUSES = frozenset({"rejected", "canceled", "expired"})
_NUMERIC_ORDER_FIELDS = ("qty", "notional", "filled_qty", "filled_avg_price")
_TIME_ORDER_FIELDS = ("submitted_at", "filled_at", "canceled_at", "failed_at", "updated_at")


def _float(value: Any) -> float:
    return float("nan") if value is None or value == "" else float(value)


def order_frame(orders: list[dict[str, Any]], reconciled_on: date) -> pd.DataFrame:
    rows = [
        {
            "order_id": str(order["id"]),
            "client_order_id": order["client_order_id"],
            "symbol": order.get("symbol"),
            "side": order.get("side"),
            "type": order.get("type"),
            "time_in_force": order.get("time_in_force"),
            **{field: _float(order.get(field)) for field in _NUMERIC_ORDER_FIELDS},
            "status": order["status"],
            **{field: order.get(field) for field in _TIME_ORDER_FIELDS},
            "reconciled_on": pd.Timestamp(reconciled_on),
        }
        for order in orders
    ]
    frame = pd.DataFrame(rows, columns=list(ORDER_COLUMNS))
    for field in _TIME_ORDER_FIELDS:
        frame[field] = pd.to_datetime(frame[field], utc=True, format="ISO8601")
    return frame


def position_frame(positions: list[dict[str, Any]], day: date) -> pd.DataFrame:
    rows = [
        {
            "date": pd.Timestamp(day),
            "symbol": position["symbol"],
            **{field: _float(position.get(field)) for field in POSITION_COLUMNS[2:]},
        }
        for position in positions
    ]
    return pd.DataFrame(rows, columns=list(POSITION_COLUMNS))


def equity_frame(previous: pd.DataFrame | None, account: AccountSnapshot, day: date) -> pd.DataFrame:
    """``previous`` with the row of ``day`` added or replaced, ``return_since_start`` recomputed."""
    row = pd.DataFrame(
        [
            {
                "date": pd.Timestamp(day),
                "equity": account.equity,
                "cash": account.cash,
                "long_market_value": account.long_market_value,
                "return_since_start": 0.0,
            }
        ]
    )
    frame = upsert(previous, row, ["date"])
    frame["return_since_start"] = frame["equity"] / frame["equity"].iloc[0] - 1
    return frame.loc[:, list(EQUITY_COLUMNS)]


def upsert(previous: pd.DataFrame | None, new: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows of ``new`` replace rows of ``previous`` with the same keys; sorted by the keys."""
    if previous is None or previous.empty:
        combined = new
    elif new.empty:
        combined = previous
    else:
        combined = pd.concat([previous, new], ignore_index=True)
    combined = combined.drop_duplicates(subset=keys, keep="last")
    return combined.sort_values(keys, kind="stable").reset_index(drop=True)


def replace_day(previous: pd.DataFrame | None, new: pd.DataFrame, day: date) -> pd.DataFrame:
    """``previous`` without the rows of ``day``, plus ``new`` (positions closed since are dropped)."""
    if previous is not None and not previous.empty:
        previous = previous[previous["date"] != pd.Timestamp(day)]
    return upsert(previous, new, ["date", "symbol"])


def read_journal(store: Objects, key: str) -> pd.DataFrame | None:
    try:
        return store.get_parquet(key)
    except ObjectNotFoundError:
        return None


def problem_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders the broker rejected, canceled or let expire."""
    return orders[orders["status"].isin(PROBLEM_STATUSES)]
