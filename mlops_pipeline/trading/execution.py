"""Place a plan's intents exactly once per trading day.

Each intent carries its deterministic ``client_order_id``. Alpaca refuses a second order with the
same id (422 "client_order_id must be unique", even after the first was filled or canceled), so a
rerun finds its earlier order instead of placing a duplicate: that answer is read as "already
placed" and the existing order is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlops_pipeline.trading.broker_client import (
    DUPLICATE_CLIENT_ORDER_ID,
    BrokerClient,
    BrokerCredentialsError,
    BrokerError,
)
from mlops_pipeline.trading.model import OrderIntent

Outcome = Literal["submitted", "already_placed", "failed"]


@dataclass(frozen=True)
class Submission:
    intent: OrderIntent
    outcome: Outcome
    order: dict[str, Any] | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        order = self.order or {}
        return {
            "ticker": self.intent.ticker,
            "side": self.intent.side,
            "qty": self.intent.qty,
            "client_order_id": self.intent.client_order_id,
            "outcome": self.outcome,
            "order_id": order.get("id"),
            "status": order.get("status"),
            "error": self.error,
        }


def is_duplicate(error: BrokerError) -> bool:
    return error.status == 422 and DUPLICATE_CLIENT_ORDER_ID in error.message


def submit_intents(client: BrokerClient, intents: list[OrderIntent]) -> list[Submission]:
    """Submit every intent; a broker error on one is recorded and the others still go out
    (refused keys stop everything: no other order could go out either)."""
    results = []
    for intent in intents:
        try:
            order = client.submit_market_order(intent.ticker, intent.qty, intent.side, intent.client_order_id)
            results.append(Submission(intent, "submitted", order))
        except BrokerCredentialsError:
            raise
        except BrokerError as exc:
            if not is_duplicate(exc):
                results.append(Submission(intent, "failed", error=exc.message))
                continue
            existing = client.order_by_client_id(intent.client_order_id)
            results.append(Submission(intent, "already_placed", existing))
    return results
