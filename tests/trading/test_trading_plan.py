"""Strategies, sizing, risk limits and the kill switch as pure functions."""

from __future__ import annotations

import math
from datetime import date

import pytest
from _trading_helpers import make_team

from mlops_pipeline.trading.model import Portfolio, Signal
from mlops_pipeline.trading.order_ids import client_order_id, strategy_version
from mlops_pipeline.trading.planning import ORDER_PRICE_BUFFER, plan_orders
from mlops_pipeline.trading.risk import kill_switch_reason

DAY = date(2024, 6, 14)
PRICES = {"AAPL": 100.0, "MSFT": 200.0, "NVDA": 50.0}
CASH_ONLY = Portfolio(equity=100_000.0, cash=100_000.0)


def ret(simple: float) -> float:
    return math.log1p(simple)


def signals(**returns: float) -> list[Signal]:
    return [Signal(ticker, ret(value), math.nan) for ticker, value in returns.items()]


def sides(plan) -> dict[str, tuple[str, float]]:
    return {intent.ticker: (intent.side, intent.qty) for intent in plan.intents}


ROTATE = {"name": "rotate_best_gain", "params": {"threshold": 0.003, "max_holdings": 2}}


def test_rotate_best_gain_sells_fallers_and_buys_the_best_gains_up_to_n_holdings() -> None:
    team = make_team(strategy=ROTATE, tickers=["AAPL", "MSFT", "NVDA", "TSLA"])
    prices = {**PRICES, "TSLA": 10.0}
    held = Portfolio(equity=100_000.0, cash=80_000.0, positions={"AAPL": 200.0})
    plan = plan_orders(team, DAY, signals(AAPL=-0.01, MSFT=0.004, NVDA=0.02, TSLA=0.01), held, prices)

    # AAPL falls more than the threshold: sold; two slots free: NVDA and TSLA (the best gains), not MSFT.
    assert sides(plan) == {"AAPL": ("sell", 200.0), "NVDA": ("buy", 485.0), "TSLA": ("buy", 2427.0)}
    assert plan.intents[0].side == "sell"  # sells go first
    msft = next(d for d in plan.decisions if d.ticker == "MSFT")
    assert msft.action == "keep" and "2 holdings max" in msft.reason


def test_rotate_best_gain_keeps_holdings_inside_the_threshold_and_fills_only_free_slots() -> None:
    team = make_team(strategy=ROTATE)
    held = Portfolio(equity=100_000.0, cash=75_000.0, positions={"AAPL": 250.0})
    plan = plan_orders(team, DAY, signals(AAPL=-0.002, MSFT=0.01, NVDA=0.02), held, PRICES)
    assert sides(plan) == {"NVDA": ("buy", 485.0)}  # one free slot: the best gain only


def test_rotate_best_gain_does_nothing_below_the_threshold() -> None:
    plan = plan_orders(make_team(strategy=ROTATE), DAY, signals(AAPL=0.003, MSFT=-0.001), CASH_ONLY, PRICES)
    assert plan.intents == []


def test_threshold_long_flat_is_long_above_and_flat_below() -> None:
    team = make_team()
    held = Portfolio(equity=100_000.0, cash=90_000.0, positions={"MSFT": 50.0})
    plan = plan_orders(team, DAY, signals(AAPL=0.01, MSFT=0.001, NVDA=0.0021), held, PRICES)
    # weight = min(max_position_pct 0.25, 0.95 / 3) = 0.25 of equity, priced with the buffer
    expected_aapl = math.floor(25_000 / (100 * (1 + ORDER_PRICE_BUFFER)))
    assert sides(plan) == {"AAPL": ("buy", expected_aapl), "MSFT": ("sell", 50.0), "NVDA": ("buy", 485.0)}


def test_threshold_long_flat_does_not_top_up_a_held_position() -> None:
    held = Portfolio(equity=100_000.0, cash=99_000.0, positions={"AAPL": 10.0})
    assert plan_orders(make_team(), DAY, signals(AAPL=0.05), held, PRICES).intents == []


def test_direction_classifier_acts_only_beyond_the_confidence_bar() -> None:
    team = make_team(strategy={"name": "direction_classifier", "params": {"min_confidence": 0.6}})
    held = Portfolio(equity=100_000.0, cash=95_000.0, positions={"MSFT": 10.0, "NVDA": 20.0})
    probs = {"AAPL": 0.65, "MSFT": 0.35, "NVDA": 0.5}
    plan = plan_orders(team, DAY, [Signal(t, math.nan, p) for t, p in probs.items()], held, PRICES)
    assert sides(plan) == {"AAPL": ("buy", 242.0), "MSFT": ("sell", 10.0)}
    assert {d.ticker: d.action for d in plan.decisions}["NVDA"] == "keep"


FALLING = {"AAPL": -0.004, "MSFT": -0.001, "NVDA": -0.02}  # every predicted return is a loss


@pytest.mark.parametrize(
    "strategy",
    [
        {"name": "threshold_long_flat", "params": {"threshold": 0.002, "min_holdings": 1}},
        {**ROTATE, "params": {**ROTATE["params"], "min_holdings": 1}},
        {"name": "direction_classifier", "params": {"min_confidence": 0.6, "min_holdings": 1}},
    ],
)
def test_min_holdings_buys_the_best_ranked_when_nothing_passes_the_entry_rule(strategy: dict) -> None:
    team = make_team(strategy=strategy)
    probs = {"AAPL": 0.45, "MSFT": 0.52, "NVDA": 0.3}  # P(up) ranks MSFT first too
    plan = plan_orders(team, DAY, [Signal(t, ret(FALLING[t]), probs[t]) for t in FALLING], CASH_ONLY, PRICES)
    assert sides(plan) == {"MSFT": ("buy", 121.0)}  # 0.25 of equity at 200 + the buffer
    msft = next(d for d in plan.decisions if d.ticker == "MSFT")
    assert msft.reason.endswith("entered: best-ranked, min_holdings 1")


def test_min_holdings_keeps_the_best_ranked_holding_and_sells_the_rest() -> None:
    team = make_team(strategy={**ROTATE, "params": {**ROTATE["params"], "min_holdings": 1}})
    held = Portfolio(equity=100_000.0, cash=60_000.0, positions={"AAPL": 200.0, "NVDA": 400.0})
    plan = plan_orders(team, DAY, signals(AAPL=-0.004, MSFT=-0.01, NVDA=-0.02), held, PRICES)
    # Both holdings are predicted to fall beyond the threshold; AAPL ranks first and stays.
    assert sides(plan) == {"NVDA": ("sell", 400.0)}
    aapl = next(d for d in plan.decisions if d.ticker == "AAPL")
    assert aapl.action == "keep" and aapl.reason.endswith("kept: best-ranked, min_holdings 1")


def test_min_holdings_adds_nothing_once_the_entry_rule_holds_enough() -> None:
    strategy = {"name": "threshold_long_flat", "params": {"threshold": 0.002, "min_holdings": 2}}
    plan = plan_orders(
        make_team(strategy=strategy), DAY, signals(AAPL=0.01, MSFT=0.003, NVDA=-0.01), CASH_ONLY, PRICES
    )
    assert set(sides(plan)) == {"AAPL", "MSFT"}  # both pass the threshold: the rule adds nobody
    plan = plan_orders(
        make_team(strategy=strategy), DAY, signals(AAPL=0.01, MSFT=-0.003, NVDA=-0.01), CASH_ONLY, PRICES
    )
    assert set(sides(plan)) == {"AAPL", "MSFT"}  # MSFT is the best-ranked of the rest


def test_bad_inputs_are_skipped_with_a_reason_never_ordered() -> None:
    team = make_team()
    bad = [
        Signal("TSLA", ret(0.05), math.nan),  # not one of the team's tickers
        Signal("AAPL", math.nan, math.nan),  # NaN prediction
        Signal("MSFT", ret(0.05), math.nan),  # price 0
        Signal("NVDA", ret(0.05), math.nan),  # no price at all
    ]
    plan = plan_orders(team, DAY, bad, CASH_ONLY, {"AAPL": 100.0, "MSFT": 0.0, "TSLA": 10.0})
    assert plan.intents == []
    reasons = {item.ticker: item.reason for item in plan.skipped}
    assert reasons["TSLA"] == "not traded by team red"
    assert reasons["AAPL"] == "prediction is NaN"
    assert reasons["MSFT"].startswith("no valid price")
    assert reasons["NVDA"].startswith("no valid price")


def test_max_position_pct_and_gross_exposure_cap_the_buys() -> None:
    team = make_team(risk={"max_position_pct": 0.04, "max_gross_exposure": 0.1, "cash_buffer_pct": 0.0})
    plan = plan_orders(team, DAY, signals(AAPL=0.01, MSFT=0.02, NVDA=0.03), CASH_ONLY, PRICES)
    notional = {intent.ticker: intent.notional for intent in plan.intents}
    assert list(notional) == ["NVDA", "MSFT", "AAPL"]  # best predicted first
    assert notional["NVDA"] <= 4_000 and notional["MSFT"] <= 4_000  # 4 % of equity each
    assert 1_000 < notional["AAPL"] <= 10_000 - notional["NVDA"] - notional["MSFT"]  # the gross remainder
    assert sum(notional.values()) <= 10_000


def test_an_entry_below_one_share_is_skipped() -> None:
    team = make_team(risk={"max_position_pct": 0.001})
    plan = plan_orders(team, DAY, signals(MSFT=0.01), CASH_ONLY, PRICES)
    assert plan.intents == []
    assert plan.skipped[0].reason == "budget 100.00 is below one share at 200.00"


def test_gross_exposure_counts_positions_that_stay() -> None:
    team = make_team(risk={"max_position_pct": 0.5, "max_gross_exposure": 0.5, "cash_buffer_pct": 0.0})
    held = Portfolio(equity=100_000.0, cash=55_000.0, positions={"MSFT": 225.0})  # 45 % held
    plan = plan_orders(team, DAY, signals(AAPL=0.01, MSFT=0.01), held, PRICES)
    assert sides(plan) == {"AAPL": ("buy", math.floor(5_000 / (100 * (1 + ORDER_PRICE_BUFFER))))}


def test_cash_buffer_is_kept() -> None:
    team = make_team(risk={"max_position_pct": 1.0, "max_gross_exposure": 1.0, "cash_buffer_pct": 0.1})
    plan = plan_orders(team, DAY, signals(AAPL=0.01), Portfolio(equity=10_000.0, cash=10_000.0), PRICES)
    (intent,) = plan.intents
    assert intent.qty * intent.price * (1 + ORDER_PRICE_BUFFER) <= 9_000


def test_max_orders_per_day() -> None:
    team = make_team(risk={"max_orders_per_day": 1})
    plan = plan_orders(team, DAY, signals(AAPL=0.01, MSFT=0.02), CASH_ONLY, PRICES)
    assert sides(plan) == {"MSFT": ("buy", 121.0)}
    assert [item.reason for item in plan.skipped] == ["max_orders_per_day (1) reached"]


def test_max_notional_per_day_cuts_buys_and_skips_what_does_not_fit() -> None:
    team = make_team(risk={"max_notional_per_day": 5_050})
    plan = plan_orders(team, DAY, signals(AAPL=0.01, MSFT=0.02), CASH_ONLY, PRICES)
    assert sides(plan) == {"MSFT": ("buy", 25.0)}  # 25 * 200 = 5000 <= 5050
    assert plan.skipped[0].ticker == "AAPL" and "max_notional_per_day" in plan.skipped[0].reason


def test_kill_switch_blocks_every_order() -> None:
    team = make_team(risk={"kill_switch_env": "RED_KILL", "kill_switch_file": "/flags/red.stop"})
    reason = kill_switch_reason(team.risk, {"RED_KILL": "1"})
    assert reason == "kill switch: RED_KILL is set"
    assert kill_switch_reason(team.risk, {"RED_KILL": "0"}, lambda path: False) is None
    by_file = kill_switch_reason(team.risk, {}, lambda path: path == "/flags/red.stop")
    assert by_file == "kill switch: /flags/red.stop exists"

    plan = plan_orders(team, DAY, signals(AAPL=0.01), CASH_ONLY, PRICES, kill_switch=reason)
    assert plan.intents == []
    assert plan.skipped[0].reason.startswith("kill switch: RED_KILL is set (buy ")


def test_client_order_ids_are_deterministic_and_versioned_by_strategy() -> None:
    team = make_team()
    first = plan_orders(team, DAY, signals(AAPL=0.01), CASH_ONLY, PRICES)
    again = plan_orders(team, DAY, signals(AAPL=0.02), CASH_ONLY, {**PRICES, "AAPL": 90.0})
    version = strategy_version(team.strategy)
    assert first.intents[0].client_order_id == again.intents[0].client_order_id
    assert first.intents[0].client_order_id == f"red-20240614-AAPL-buy-{version}"
    changed = make_team(strategy={"name": "threshold_long_flat", "params": {"threshold": 0.001}})
    assert strategy_version(changed.strategy) != version
    assert (
        client_order_id("red", date(2024, 6, 17), "AAPL", "buy", version) != first.intents[0].client_order_id
    )


@pytest.mark.parametrize("value", ["true", "YES", "on", "1"])
def test_kill_switch_env_values(value: str) -> None:
    assert kill_switch_reason(make_team().risk, {"MLOPS_KILL_SWITCH": value}, lambda path: False)
