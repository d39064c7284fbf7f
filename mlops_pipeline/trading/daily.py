"""One team's trading day: place the orders of a trading date, then reconcile the journal.

Timing: the daily loop runs after the close of the trading date (the last completed session).
Orders are ``day`` market orders: placed while the market is closed they wait (``accepted``) and
execute at the next session's open; placed during a session they execute at once. Predictions
and the trading date must both be the broker's last completed session, otherwise nothing is
placed (a backfill of an older date never trades).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd

from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE, last_completed_trading_day
from mlops_pipeline.objects import Objects
from mlops_pipeline.team_store import EQUITY_KEY, ORDERS_KEY, POSITIONS_KEY
from mlops_pipeline.trading.broker_client import AccountSnapshot, BrokerClient, ClockSnapshot
from mlops_pipeline.trading.execution import Submission, submit_intents
from mlops_pipeline.trading.journal import (
    equity_frame,
    order_frame,
    position_frame,
    problem_orders,
    read_journal,
    replace_day,
    upsert,
)
from mlops_pipeline.trading.model import Portfolio, TradePlan
from mlops_pipeline.trading.order_ids import strategy_version, trading_date_of
from mlops_pipeline.trading.planning import plan_orders
from mlops_pipeline.trading.predictions import load_signals
from mlops_pipeline.trading.risk import kill_switch_reason

ORDERS_LOOKBACK_DAYS = 10


@dataclass
class OrdersReport:
    team: str
    trading_date: date
    strategy_version: str
    clock: ClockSnapshot
    plan: TradePlan = field(default_factory=lambda: TradePlan([], [], []))
    submissions: list[Submission] = field(default_factory=list)
    warning: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for submission in self.submissions if submission.outcome == outcome)

    @property
    def failures(self) -> list[Submission]:
        return [submission for submission in self.submissions if submission.outcome == "failed"]

    def metadata(self) -> dict[str, Any]:
        return {
            "trading_date": self.trading_date.isoformat(),
            "strategy_version": self.strategy_version,
            "market_open": self.clock.is_open,
            "executes_at": "now (market open)" if self.clock.is_open else self.clock.next_open.isoformat(),
            "warning": self.warning or "none",
            "intents": [
                {
                    "ticker": intent.ticker,
                    "side": intent.side,
                    "qty": intent.qty,
                    "price": intent.price,
                    "client_order_id": intent.client_order_id,
                    "reason": intent.reason,
                }
                for intent in self.plan.intents
            ],
            "submitted_orders": [submission.summary() for submission in self.submissions],
            "skipped_intents": [{"ticker": item.ticker, "reason": item.reason} for item in self.plan.skipped],
            "decisions": [
                {"ticker": item.ticker, "action": item.action, "reason": item.reason}
                for item in self.plan.decisions
            ],
            "new_orders": self.count("submitted"),
            "already_placed": self.count("already_placed"),
            "failed_orders": self.count("failed"),
        }


def place_daily_orders(
    team: TeamConfig,
    client: BrokerClient,
    store: Objects,
    trading_date: date,
    environ: Mapping[str, str],
) -> OrdersReport:
    """Plan and place the orders of ``trading_date`` (idempotent: a rerun places nothing new)."""
    clock = client.clock()
    report = OrdersReport(team.name, trading_date, strategy_version(team.strategy), clock)
    broker_session = last_completed_trading_day(clock.timestamp)
    signals, stale = load_signals(store, team.tickers, trading_date)
    later = latest_traded_session(store, team.name)
    if trading_date != broker_session:
        report.warning = (
            f"trading date {trading_date} is not the broker's last completed session {broker_session}: "
            "no orders"
        )
    elif later is not None and later > trading_date:
        report.warning = f"the account already traded a later session ({later}): no orders for {trading_date}"
    elif not signals:
        report.warning = f"no predictions with as_of_date {trading_date} (stale or missing): no orders"
    if report.warning:
        report.plan = TradePlan([], stale, [])
        return report
    account = client.account()
    positions = {position["symbol"]: float(position["qty"]) for position in client.positions()}
    prices = client.latest_prices(sorted(set(team.tickers) | set(positions)))
    portfolio = Portfolio(equity=account.equity, cash=account.cash, positions=positions)
    plan = plan_orders(team, trading_date, signals, portfolio, prices, kill_switch_reason(team.risk, environ))
    report.plan = TradePlan(plan.intents, stale + plan.skipped, plan.decisions)
    if stale:
        report.warning = f"{len(stale)} ticker(s) without predictions for {trading_date}: not traded"
    report.submissions = submit_intents(client, plan.intents)
    return report


def latest_traded_session(store: Objects, team: str) -> date | None:
    """The latest session the team's account has acted on: its journaled orders or, for a session
    that placed none, its journaled equity (re-running an earlier session must not trade or journal
    against the account's later state)."""
    known: list[date] = []
    orders = read_journal(store, ORDERS_KEY)
    if orders is not None:
        dates = [trading_date_of(str(order_id), team) for order_id in orders["client_order_id"]]
        known += [day for day in dates if day is not None]
    equity = read_journal(store, EQUITY_KEY)
    if equity is not None and not equity.empty:
        known.append(equity["date"].max().date())
    return max(known) if known else None


@dataclass
class ReconciliationReport:
    trading_date: date
    account: AccountSnapshot
    orders_seen: int
    positions: int
    problems: pd.DataFrame
    equity_rows: int
    return_since_start: float
    uris: dict[str, str]

    def metadata(self) -> dict[str, Any]:
        return {
            "trading_date": self.trading_date.isoformat(),
            "equity": self.account.equity,
            "cash": self.account.cash,
            "long_market_value": self.account.long_market_value,
            "return_since_start": self.return_since_start,
            "orders_seen": self.orders_seen,
            "open_positions": self.positions,
            "equity_days": self.equity_rows,
            "rejected_or_canceled": [
                {"client_order_id": row.client_order_id, "symbol": row.symbol, "status": row.status}
                for row in self.problems.itertuples()
            ],
        }


def reconcile(
    team: TeamConfig, client: BrokerClient, store: Objects, trading_date: date
) -> ReconciliationReport:
    """Pull orders (of the last :data:`ORDERS_LOOKBACK_DAYS`), positions and equity into the journal."""
    account = client.account()
    positions = client.positions()
    after = datetime.combine(trading_date - timedelta(days=ORDERS_LOOKBACK_DAYS), time(0), EXCHANGE_TIMEZONE)
    recent = order_frame(client.orders_since(after), trading_date)
    orders = upsert(read_journal(store, ORDERS_KEY), recent, ["order_id"])
    orders = orders.sort_values(["submitted_at", "order_id"], kind="stable").reset_index(drop=True)
    held = replace_day(
        read_journal(store, POSITIONS_KEY), position_frame(positions, trading_date), trading_date
    )
    equity = equity_frame(read_journal(store, EQUITY_KEY), account, trading_date)
    uris = {
        "orders": store.put_parquet(
            ORDERS_KEY, orders, {"team": team.name, "as_of": trading_date.isoformat()}
        ),
        "positions": store.put_parquet(
            POSITIONS_KEY, held, {"team": team.name, "as_of": trading_date.isoformat()}
        ),
        "equity": store.put_parquet(
            EQUITY_KEY, equity, {"team": team.name, "as_of": trading_date.isoformat()}
        ),
    }
    return ReconciliationReport(
        trading_date=trading_date,
        account=account,
        orders_seen=len(recent),
        positions=len(positions),
        problems=problem_orders(recent),
        equity_rows=len(equity),
        return_since_start=float(equity["return_since_start"].iloc[-1]),
        uris=uris,
    )
