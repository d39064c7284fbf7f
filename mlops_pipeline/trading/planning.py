"""From signals, holdings and prices to the day's order intents (pure; no broker, no storage).

Steps: drop unusable inputs (a ticker the team does not trade, a NaN prediction, a missing or
non-positive price) with a reason; let the team's strategy decide per ticker; size exits (sell
the whole position) and entries (buy whole shares); apply the day limits; and finally the kill
switch, which turns every intent into a skipped one.

Sizing: each entry gets ``min(max_position_pct, max_gross_exposure / slots)`` of equity, where
``slots`` is ``max_holdings`` for ``rotate_best_gain`` and the number of tickers otherwise, and
never more than the room left under ``max_gross_exposure`` (counting the positions that stay) and
the cash above ``cash_buffer_pct`` of equity. Shares are priced at the latest price plus
:data:`ORDER_PRICE_BUFFER`, as the broker reserves buying power for market buys above the last
price. Proceeds of today's sells are not spent today (they settle at the next open, with the
buys). Entries are placed best score first; positions already held are not topped up.
"""

from __future__ import annotations

import math
from datetime import date

from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.trading.model import (
    Decision,
    OrderIntent,
    Portfolio,
    Side,
    Signal,
    SkippedIntent,
    TradePlan,
)
from mlops_pipeline.trading.order_ids import client_order_id, strategy_version
from mlops_pipeline.trading.risk import apply_day_limits
from mlops_pipeline.trading.strategies import decide, target_slots, usable_value

ORDER_PRICE_BUFFER = 0.03


def usable_signals(
    team: TeamConfig, signals: list[Signal], prices: dict[str, float]
) -> tuple[list[Signal], list[SkippedIntent]]:
    usable, skipped = [], []
    for signal in signals:
        price = prices.get(signal.ticker, math.nan)
        if signal.ticker not in team.tickers:
            skipped.append(SkippedIntent(signal.ticker, f"not traded by team {team.name}"))
        elif not math.isfinite(usable_value(signal, team.strategy)):
            skipped.append(SkippedIntent(signal.ticker, "prediction is NaN"))
        elif not math.isfinite(price) or price <= 0:
            skipped.append(SkippedIntent(signal.ticker, f"no valid price (got {price})"))
        else:
            usable.append(signal)
    return usable, skipped


def plan_orders(
    team: TeamConfig,
    trading_date: date,
    signals: list[Signal],
    portfolio: Portfolio,
    prices: dict[str, float],
    kill_switch: str | None = None,
) -> TradePlan:
    """The day's order intents for ``team`` (sells first, then buys by score)."""
    usable, skipped = usable_signals(team, signals, prices)
    held = {symbol for symbol, qty in portfolio.positions.items() if qty > 0}
    decisions = decide(usable, held, team.strategy)
    version = strategy_version(team.strategy)

    def intent(decision: Decision, side: Side, qty: float, price: float) -> OrderIntent:
        order_id = client_order_id(team.name, trading_date, decision.ticker, side, version)
        return OrderIntent(decision.ticker, side, qty, price, order_id, decision.reason)

    exits = [d for d in decisions if d.action == "exit" and d.ticker in held]
    sells = [intent(d, "sell", portfolio.positions[d.ticker], prices[d.ticker]) for d in exits]
    buys, size_skips = _size_entries(team, decisions, held, portfolio, prices, {d.ticker for d in exits})
    planned = sells + [intent(d, "buy", qty, prices[d.ticker]) for d, qty in buys]
    intents, limit_skips = apply_day_limits(planned, team.risk)
    skipped += size_skips + limit_skips
    if kill_switch:
        skipped += [
            SkippedIntent(item.ticker, f"{kill_switch} ({item.side} {item.qty:g})") for item in intents
        ]
        intents = []
    return TradePlan(intents=intents, skipped=skipped, decisions=decisions)


def _size_entries(
    team: TeamConfig,
    decisions: list[Decision],
    held: set[str],
    portfolio: Portfolio,
    prices: dict[str, float],
    exiting: set[str],
) -> tuple[list[tuple[Decision, float]], list[SkippedIntent]]:
    risk, equity = team.risk, portfolio.equity
    weight = min(
        risk.max_position_pct, risk.max_gross_exposure / target_slots(team.strategy, len(team.tickers))
    )
    staying_value = sum(
        qty * prices.get(symbol, 0.0) for symbol, qty in portfolio.positions.items() if symbol not in exiting
    )
    gross_room = risk.max_gross_exposure * equity - staying_value
    cash_room = portfolio.cash - risk.cash_buffer_pct * equity
    entries = sorted(
        (d for d in decisions if d.action == "enter" and d.ticker not in held),
        key=lambda d: (-d.score, d.ticker),
    )
    sized, skipped = [], []
    for decision in entries:
        price = prices[decision.ticker]
        budget = min(weight * equity, gross_room, cash_room)
        qty = math.floor(max(budget, 0.0) / (price * (1 + ORDER_PRICE_BUFFER)))
        if qty < 1:
            skipped.append(
                SkippedIntent(
                    decision.ticker, f"budget {max(budget, 0.0):.2f} is below one share at {price:.2f}"
                )
            )
            continue
        gross_room -= qty * price
        cash_room -= qty * price * (1 + ORDER_PRICE_BUFFER)
        sized.append((decision, float(qty)))
    return sized, skipped
