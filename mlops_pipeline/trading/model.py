"""Plain values passed between the trading steps (no broker or storage types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Side = Literal["buy", "sell"]
Action = Literal["enter", "exit", "keep"]


@dataclass(frozen=True)
class Signal:
    """One ticker's prediction for the next session (``predicted_return`` is a log return)."""

    ticker: str
    predicted_return: float
    prob_up: float


@dataclass(frozen=True)
class Decision:
    """What a strategy wants for one ticker; ``score`` ranks entries (higher first)."""

    ticker: str
    action: Action
    score: float
    reason: str


@dataclass(frozen=True)
class Portfolio:
    """The account as the broker reports it: equity, cash and share counts per symbol."""

    equity: float
    cash: float
    positions: dict[str, float] = field(default_factory=dict)

    def market_value(self, symbol: str, prices: dict[str, float]) -> float:
        return self.positions.get(symbol, 0.0) * prices.get(symbol, 0.0)


@dataclass(frozen=True)
class OrderIntent:
    """A market order the plan wants placed (``price`` is the estimate used for sizing)."""

    ticker: str
    side: Side
    qty: float
    price: float
    client_order_id: str
    reason: str

    @property
    def notional(self) -> float:
        return self.qty * self.price


@dataclass(frozen=True)
class SkippedIntent:
    """A ticker the plan does not trade today, and why."""

    ticker: str
    reason: str


@dataclass(frozen=True)
class TradePlan:
    intents: list[OrderIntent]
    skipped: list[SkippedIntent]
    decisions: list[Decision]
