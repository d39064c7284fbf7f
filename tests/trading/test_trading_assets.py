"""The session-partitioned orders and reconciliation assets, materialized with Dagster against the
sandbox broker: the partition key is the trading date, and on the sandbox every broker request
carries it (``X-Sandbox-Session``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg
import pytest
from _trading_helpers import TRADING_DAY, Sandbox, make_team
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from mlops_pipeline.assets.sessions import PREVIOUS_SESSION, nyse_sessions
from mlops_pipeline.assets.trading import build_trading_assets
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.resources.broker import BrokerResource
from mlops_pipeline.resources.object_store import ObjectStore

pytestmark = pytest.mark.integration  # servers on 127.0.0.1

SESSIONS = nyse_sessions(date(2024, 6, 3), date(2024, 6, 28))
RED = make_team(
    "red", strategy={"name": "rotate_best_gain", "params": {"threshold": 0.003, "max_holdings": 2}}
)
BLUE = make_team(
    "blue",
    tickers=["AAPL", "AMZN", "TSLA"],
    strategy={"name": "direction_classifier", "params": {"min_confidence": 0.55}},
)


def resources(store: ObjectStore, sandbox: Sandbox, broker: BrokerResource | None = None) -> dict:
    return {
        "object_store": store,
        "broker": broker or BrokerResource(mode="sandbox", url=sandbox.url, max_retries=0),
    }


def materialize(
    teams: list[TeamConfig], day: date, res: dict, only_orders: bool = False
) -> dg.ExecuteInProcessResult:
    assets = [asset for team in teams for asset in build_trading_assets(team, load_settings(), SESSIONS)]
    if only_orders:
        assets = [asset for asset in assets if asset.key.path[-1] == "orders"]
    return dg.materialize(assets, resources=res, partition_key=day.isoformat(), raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult, team: str, asset: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(f"{team}__{asset}")
    return {name: getattr(value, "value", value) for name, value in event.metadata.items()}


def sandbox_orders(sandbox: Sandbox, team: str) -> list:
    client = TradingClient(f"sandbox-{team}", f"sandbox-{team}-secret", url_override=sandbox.url)
    return client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))


def restart_on(sandbox: Sandbox, day: date) -> None:
    """The sandbox of a later day (same broker database): its sessions now reach ``day``."""
    sandbox.set_today(day)
    sandbox.stop()
    sandbox.start()


def test_orders_and_reconciliation_are_session_partitions_after_their_previous_session() -> None:
    orders, reconciliation = build_trading_assets(RED, load_settings(), SESSIONS)
    for asset, upstream in ((orders, ["red", "predictions"]), (reconciliation, ["red", "orders"])):
        assert asset.partitions_def == SESSIONS
        assert dg.AssetKey(upstream) in asset.dependency_keys
        own = asset.get_partition_mapping(asset.key)
        assert own == PREVIOUS_SESSION
        # the previous session of Monday is Friday, across the weekend
        assert own.get_upstream_mapped_partitions_result_for_partitions(
            SESSIONS.subset_with_partition_keys(["2024-06-17"]), SESSIONS, SESSIONS
        ).partitions_subset.get_partition_keys() == ["2024-06-14"]


def test_three_runs_of_one_trading_day_place_one_set_of_orders(
    sandbox: Sandbox, store: ObjectStore, write_predictions: Callable[..., None]
) -> None:
    write_predictions("red", TRADING_DAY, {"AAPL": 0.01, "MSFT": 0.02, "NVDA": -0.01})
    res = resources(store, sandbox)
    runs = [materialize([RED], TRADING_DAY, res, only_orders=True) for _ in range(3)]

    assert all(run.success for run in runs)
    first, *reruns = (metadata(run, "red", "orders") for run in runs)
    assert first["new_orders"] == 2 and first["already_placed"] == 0
    assert {item["ticker"] for item in first["intents"]} == {"MSFT", "AAPL"}
    assert first["executes_at"] == "2024-06-17T09:30:00-04:00"
    for again in reruns:
        assert (again["new_orders"], again["already_placed"]) == (0, 2)
        assert [o["order_id"] for o in again["submitted_orders"]] == [
            o["order_id"] for o in first["submitted_orders"]
        ]
    orders = sandbox_orders(sandbox, "red")
    assert len(orders) == 2
    assert {order.client_order_id for order in orders} == {
        item["client_order_id"] for item in first["intents"]
    }


def test_stale_predictions_place_no_orders(
    sandbox: Sandbox, store: ObjectStore, write_predictions: Callable[..., None]
) -> None:
    write_predictions("red", date(2024, 6, 13), {"AAPL": 0.01, "MSFT": 0.02, "NVDA": 0.03})
    result = materialize([RED], TRADING_DAY, resources(store, sandbox), only_orders=True)

    assert result.success
    meta = metadata(result, "red", "orders")
    assert meta["warning"] == "no predictions with as_of_date 2024-06-14 (stale or missing): no orders"
    assert {item["reason"] for item in meta["skipped_intents"]} == {
        "stale predictions: newest as_of_date 2024-06-13, need 2024-06-14"
    }
    assert meta["new_orders"] == 0
    assert sandbox_orders(sandbox, "red") == []


def test_a_backfill_trades_each_older_session_as_of_that_session_and_never_again(
    sandbox: Sandbox, store: ObjectStore, write_predictions: Callable[..., None]
) -> None:
    res = resources(store, sandbox)
    thursday = date(2024, 6, 13)  # the sandbox is already at Friday TRADING_DAY
    write_predictions("red", thursday, {"AAPL": 0.01, "MSFT": 0.02, "NVDA": -0.01})
    backfill = materialize([RED], thursday, res)
    assert backfill.success
    placed = metadata(backfill, "red", "orders")
    assert placed["trading_date"] == "2024-06-13" and placed["warning"] == "none"
    assert placed["new_orders"] == 2 and placed["executes_at"] == "2024-06-14T09:30:00-04:00"
    assert {item["client_order_id"].split("-")[1] for item in placed["intents"]} == {"20240613"}
    assert metadata(backfill, "red", "reconciliation")["trading_date"] == "2024-06-13"

    write_predictions("red", TRADING_DAY, {"AAPL": -0.01, "MSFT": 0.02, "NVDA": 0.03})
    friday = materialize([RED], TRADING_DAY, res)
    assert friday.success
    rotated = metadata(friday, "red", "orders")
    assert {(item["ticker"], item["side"]) for item in rotated["intents"]} == {
        ("AAPL", "sell"),
        ("NVDA", "buy"),
    }
    assert rotated["new_orders"] == 2
    journal = store.scoped("teams/red")
    orders = journal.get_parquet("journal/orders.parquet").set_index("client_order_id")
    assert set(orders.loc[[item["client_order_id"] for item in placed["intents"]], "status"]) == {"filled"}
    assert len(orders) == 4
    equity = journal.get_parquet("journal/equity.parquet")
    assert [d.date() for d in equity["date"]] == [thursday, TRADING_DAY]

    # the account traded Friday: Thursday again places nothing and leaves the journal as it is
    again = materialize([RED], thursday, res)
    assert again.success
    meta = metadata(again, "red", "orders")
    assert (
        meta["warning"] == "the account already traded a later session (2024-06-14): no orders for 2024-06-13"
    )
    assert meta["new_orders"] == 0 and meta["intents"] == []
    assert again.asset_materializations_for_node("red__reconciliation") == []
    assert journal.get_parquet("journal/equity.parquet").equals(equity)
    assert len(sandbox_orders(sandbox, "red")) == len(orders)


def test_an_older_session_never_trades_on_a_broker_that_acts_now(
    sandbox: Sandbox,
    store: ObjectStore,
    write_predictions: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RED_ALPACA_API_KEY", "red-key")
    monkeypatch.setenv("RED_ALPACA_SECRET_KEY", "red-secret-value")
    write_predictions("red", date(2024, 6, 13), {"AAPL": 0.01, "MSFT": 0.02})
    alpaca_mode = BrokerResource(mode="alpaca", url=sandbox.url, max_retries=0)
    result = materialize([RED], date(2024, 6, 13), resources(store, sandbox, alpaca_mode), True)

    assert result.success
    meta = metadata(result, "red", "orders")
    assert meta["warning"] == (
        "trading date 2024-06-13 is not the broker's last completed session 2024-06-14: no orders"
    )
    assert meta["new_orders"] == 0
    client = TradingClient("red-key", "red-secret-value", url_override=sandbox.url)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_a_session_after_the_sandbox_today_is_refused(
    sandbox: Sandbox, store: ObjectStore, write_predictions: Callable[..., None]
) -> None:
    monday = date(2024, 6, 17)
    write_predictions("red", monday, {"AAPL": 0.01})
    result = materialize([RED], monday, resources(store, sandbox), only_orders=True)

    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert failure.step_key == "red__orders"
    message = failure.step_failure_data.error.message
    assert "team red, 2024-06-17" in message and "after the sandbox's today (2024-06-14)" in message
    assert sandbox_orders(sandbox, "red") == []


def test_kill_switch_refuses_every_order(
    sandbox: Sandbox,
    store: ObjectStore,
    write_predictions: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_predictions("red", TRADING_DAY, {"AAPL": 0.01, "MSFT": 0.02})
    monkeypatch.setenv("MLOPS_KILL_SWITCH", "1")
    result = materialize([RED], TRADING_DAY, resources(store, sandbox), only_orders=True)

    meta = metadata(result, "red", "orders")
    assert meta["intents"] == [] and meta["new_orders"] == 0
    reasons = {item["ticker"]: item["reason"] for item in meta["skipped_intents"]}
    assert reasons["AAPL"].startswith("kill switch: MLOPS_KILL_SWITCH is set (buy ")
    assert reasons["MSFT"].startswith("kill switch: MLOPS_KILL_SWITCH is set (buy ")
    assert reasons["NVDA"] == "no predictions (nothing under predictions/NVDA/)"
    assert sandbox_orders(sandbox, "red") == []


def test_reconciliation_after_fills_across_a_sandbox_day_change(
    sandbox: Sandbox, store: ObjectStore, write_predictions: Callable[..., None]
) -> None:
    res = resources(store, sandbox)
    write_predictions("blue", TRADING_DAY, {}, prob_up={"AAPL": 0.7, "AMZN": 0.6, "TSLA": 0.5})
    friday = materialize([BLUE], TRADING_DAY, res)
    assert friday.success
    journal = store.scoped("teams/blue")
    assert set(journal.get_parquet("journal/orders.parquet")["status"]) == {"accepted"}
    assert journal.get_parquet("journal/positions.parquet").empty

    monday = date(2024, 6, 17)
    restart_on(sandbox, monday)
    res = resources(store, sandbox)
    write_predictions("blue", monday, {}, prob_up={"AAPL": 0.3, "AMZN": 0.52, "TSLA": 0.9})
    result = materialize([BLUE], monday, res)
    assert result.success

    orders = journal.get_parquet("journal/orders.parquet")
    by_cid = orders.set_index("client_order_id")
    version = metadata(result, "blue", "orders")["strategy_version"]
    assert by_cid.loc[f"blue-20240614-AAPL-buy-{version}", "status"] == "filled"
    assert by_cid.loc[f"blue-20240614-AMZN-buy-{version}", "status"] == "filled"
    assert by_cid.loc[f"blue-20240617-AAPL-sell-{version}", "status"] == "accepted"  # fills Tuesday
    assert by_cid.loc[f"blue-20240617-TSLA-buy-{version}", "status"] == "accepted"
    assert orders["order_id"].is_unique and len(orders) == 4

    positions = journal.get_parquet("journal/positions.parquet")
    assert set(positions.loc[positions["date"] == "2024-06-17", "symbol"]) == {"AAPL", "AMZN"}
    equity = journal.get_parquet("journal/equity.parquet")
    assert [d.date() for d in equity["date"]] == [TRADING_DAY, monday]
    assert equity["equity"].iloc[0] == 100_000
    assert equity["return_since_start"].iloc[-1] == pytest.approx(equity["equity"].iloc[-1] / 100_000 - 1)
    assert metadata(result, "blue", "reconciliation")["open_positions"] == 2

    # a rerun of the same day changes nothing in the journal
    again = materialize([BLUE], monday, res)
    assert metadata(again, "blue", "orders")["new_orders"] == 0
    assert len(journal.get_parquet("journal/equity.parquet")) == 2
    assert len(journal.get_parquet("journal/orders.parquet")) == 4


def test_reconciliation_reports_canceled_orders(
    sandbox: Sandbox, store: ObjectStore, write_predictions: Callable[..., None]
) -> None:
    res = resources(store, sandbox)
    write_predictions("red", TRADING_DAY, {"AAPL": 0.01})
    materialize([RED], TRADING_DAY, res, only_orders=True)
    TradingClient("sandbox-red", "sandbox-red-secret", url_override=sandbox.url).cancel_orders()
    result = materialize([RED], TRADING_DAY, res)
    problems = metadata(result, "red", "reconciliation")["rejected_or_canceled"]
    assert [(item["symbol"], item["status"]) for item in problems] == [("AAPL", "canceled")]


def test_missing_keys_fail_only_that_team_and_name_the_variable(
    sandbox: Sandbox,
    store: ObjectStore,
    write_predictions: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BLUE_ALPACA_API_KEY", "blue-key")
    monkeypatch.setenv("BLUE_ALPACA_SECRET_KEY", "blue-secret-value")
    monkeypatch.delenv("RED_ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("RED_ALPACA_SECRET_KEY", raising=False)
    write_predictions("red", TRADING_DAY, {"AAPL": 0.01})
    write_predictions("blue", TRADING_DAY, {}, prob_up={"AAPL": 0.9})
    alpaca_mode = BrokerResource(mode="alpaca", url=sandbox.url, max_retries=0)
    result = materialize([RED, BLUE], TRADING_DAY, resources(store, sandbox, alpaca_mode), True)

    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert failure.step_key == "red__orders"
    message = failure.step_failure_data.error.message
    assert "RED_ALPACA_API_KEY" in message and "RED_ALPACA_SECRET_KEY" in message
    assert metadata(result, "blue", "orders")["new_orders"] == 1


def test_refused_keys_name_the_variables_never_the_keys(
    sandbox: Sandbox,
    store: ObjectStore,
    write_predictions: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    TradingClient("red-key", "the-real-secret", url_override=sandbox.url).get_account()
    monkeypatch.setenv("RED_ALPACA_API_KEY", "red-key")
    monkeypatch.setenv("RED_ALPACA_SECRET_KEY", "a-wrong-secret")
    write_predictions("red", TRADING_DAY, {"AAPL": 0.01})
    alpaca_mode = BrokerResource(mode="alpaca", url=sandbox.url, max_retries=0)
    result = materialize([RED], TRADING_DAY, resources(store, sandbox, alpaca_mode), True)

    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "HTTP 401" in message and "RED_ALPACA_API_KEY and RED_ALPACA_SECRET_KEY" in message
    assert "a-wrong-secret" not in message and "the-real-secret" not in message
