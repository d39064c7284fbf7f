"""The same session's orders launched twice at once through the Dagster daemon and webserver.

``mlops ui`` runs the embedded stack on a trained home. The ``session_automation`` sensor (which
launches every stage after a schedule tick's market data) launches the team's orders as soon as
its predictions exist; the instant that run is created, the same orders partition is launched from
the webserver with the request the asset page's Materialize button sends. Both runs go through
the queued run coordinator. The broker is slow (the team trades through a proxy that answers each
new order 5 s late), so that two orders steps would overlap; the team's broker-account pool lets
one trade at a time (the queue holds the second run, or its orders step waits for the pool), and
the second finds the first one's orders at the broker by their ``client_order_id``s.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest
from _fault_proxy import FaultProxy, Rule
from _net import free_port, wait_for_http
from _process_faults import (
    NEXT_SESSION,
    TEAM,
    TICKER,
    FaultHome,
    assert_no_duplicate_orders,
    assert_no_run_left_started,
    assert_store_reads_back,
    broker_orders,
    fault_home_fixture,
    instance_at,
    wait_until,
)
from _ui import materialize, sensor_ticked, stop_sensor, submit, wait_for_run

from mlops_pipeline.config.home import broker_account_pool

pytestmark = pytest.mark.integration

fault_home = pytest.fixture(scope="module")(fault_home_fixture)

SENSOR = "session_automation"
SESSION_KEY = NEXT_SESSION.isoformat()
ORDERS = dg.AssetKey([TEAM, "orders"])
RECONCILIATION = dg.AssetKey([TEAM, "reconciliation"])
ORDERS_STEP = f"{TEAM}__orders"
ORDER_DELAY_S = 5.0  # under the broker client's 10 s timeout
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _orders_run_launched_after(fault_home: FaultHome, since: float) -> Callable[[], str | None]:
    """The id of the earliest run created after ``since`` whose selection holds the team's orders."""

    def found() -> str | None:
        with instance_at(fault_home.home) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC)))
            ids = [run.run_id for run in runs if ORDERS in (run.asset_selection or set())]
        return ids[-1] if ids else None  # newest first

    return found


def _materializations(fault_home: FaultHome, key: dg.AssetKey) -> list[dg.EventLogRecord]:
    """The session's materializations of ``key``, newest first."""
    with instance_at(fault_home.home) as instance:
        return list(
            instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[SESSION_KEY]), limit=10
            ).records
        )


def _reconciled_after_orders(fault_home: FaultHome) -> bool:
    """Whether the session's reconciliation was materialized after its last orders materialization."""
    orders, reconciliations = (_materializations(fault_home, key) for key in (ORDERS, RECONCILIATION))
    return bool(orders and reconciliations) and reconciliations[0].storage_id > orders[0].storage_id


def _new_orders(record: dg.EventLogRecord) -> int:
    """The ``new_orders`` count an orders materialization shows in the UI."""
    materialization = record.asset_materialization
    assert materialization is not None
    return int(materialization.metadata["new_orders"].value)


def _held_in_queue_for_the_pool(daemon_output: str, run_id: str) -> bool:
    """Whether the run queue held ``run_id`` because the team's broker-account pool was in use."""
    held = f"Run {run_id} is blocked by global concurrency limits"
    pool = broker_account_pool(TEAM)
    return any(held in line and pool in line for line in daemon_output.splitlines())


def _nothing_in_progress(fault_home: FaultHome) -> bool:
    with instance_at(fault_home.home) as instance:
        return not instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS))


def _created_apart(fault_home: FaultHome, first: str, second: str) -> float:
    """Seconds between the creation of two runs."""
    with instance_at(fault_home.home) as instance:
        records = {
            record.dagster_run.run_id: record
            for record in instance.get_run_records(filters=dg.RunsFilter(run_ids=[first, second]))
        }
    return records[second].create_timestamp.timestamp() - records[first].create_timestamp.timestamp()


def _orders_steps(fault_home: FaultHome, run_ids: list[str]) -> dict[str, tuple[float, float, bool]]:
    """Per run: when its orders step started and succeeded, and whether it waited for the pool."""
    steps = {}
    with instance_at(fault_home.home) as instance:
        for run_id in run_ids:
            records = [record for record in instance.all_logs(run_id) if record.step_key == ORDERS_STEP]
            started = [r.timestamp for r in records if r.dagster_event_type == dg.DagsterEventType.STEP_START]
            done = [r.timestamp for r in records if r.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS]
            blocked = any("blocked by limit for pool" in (record.message or "") for record in records)
            assert started and done, (run_id, [record.dagster_event_type for record in records])
            steps[run_id] = (started[0], done[0], blocked)
    return steps


@pytest.fixture
def slow_broker(fault_home: FaultHome) -> Iterator[FaultProxy]:
    """Red trades through a proxy in front of the sandbox that ``mlops ui`` starts, which answers
    each new order ``ORDER_DELAY_S`` late."""
    proxy = FaultProxy(f"http://127.0.0.1:{fault_home.sandbox_port}")
    proxy.add(Rule("/v2/orders", method="POST", delay_s=ORDER_DELAY_S, times=None))
    shipped = dict(fault_home.settings)
    fault_home.settings.update(
        MLOPS_BROKER="alpaca",
        MLOPS_ALPACA_URL=proxy.url,
        RED_ALPACA_API_KEY=f"faults-red-{secrets.token_hex(8)}",  # made per run: the sandbox takes any
        RED_ALPACA_SECRET_KEY=f"faults-red-{secrets.token_hex(8)}",
    )
    try:
        yield proxy
    finally:
        fault_home.settings.clear()
        fault_home.settings.update(shipped)
        proxy.stop()


@pytest.mark.timeout(1500)  # one training, the embedded stack and four runs: 5-10 min on 2 busy cores
def test_a_sensor_launch_and_a_ui_launch_of_the_same_orders_place_one_set(
    fault_home: FaultHome, slow_broker: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sensor evaluates every 5 s (30 s by default): each stage it launches follows sooner.
    monkeypatch.setitem(fault_home.settings, "MLOPS_AUTOMATION_INTERVAL_S", "5")
    started = time.monotonic()
    prepared = fault_home.mlops(
        "run", "--date", SESSION_KEY, "--stage", "market", "--stage", "train", "--stage", "serve",
        log="prepare.log", today=NEXT_SESSION,
    )  # fmt: skip
    assert prepared.wait() == 0, prepared.output()
    port = free_port()
    ui = fault_home.mlops(
        "ui", "--port", str(port), "--evidently-port", str(free_port()), log="ui.log", today=NEXT_SESSION
    )
    prepared_s = time.monotonic() - started
    from dagster_graphql import DagsterGraphQLClient

    wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout_s=180)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    # After its first tick the sensor sees every later update (its first tick sees none).
    wait_until("the automation sensor's first tick", lambda: sensor_ticked(client, SENSOR), ui, every_s=1)
    sensor_found = _orders_run_launched_after(fault_home, time.time())
    predictions = submit(client, f"{TEAM}_predict", f"{SESSION_KEY}|{TICKER}")
    # The sensor launches the orders once the predictions are in: the click follows at once.
    wait_until("the sensor's orders run", lambda: sensor_found() is not None, ui, timeout_s=240, every_s=0.05)
    clicked = materialize(client, list(ORDERS.path), SESSION_KEY)
    by_sensor = sensor_found()
    assert by_sensor is not None and by_sensor != clicked
    launched_s = time.monotonic() - started
    assert wait_for_run(client, predictions) == "SUCCESS", predictions
    assert wait_for_run(client, by_sensor) == "SUCCESS", ui.output()
    assert wait_for_run(client, clicked) == "SUCCESS", ui.output()
    # The sensor journals the session once the orders are in; then nothing else is launched.
    wait_until("the reconciliation of both orders runs", lambda: _reconciled_after_orders(fault_home), ui)
    stop_sensor(client, SENSOR)
    wait_until("the last runs to end", lambda: _nothing_in_progress(fault_home), ui, every_s=1)
    quiet_s = time.monotonic() - started
    ui.process.send_signal(signal.SIGTERM)
    assert ui.wait(timeout_s=30) in (0, 130, -signal.SIGTERM), ui.output()

    steps = _orders_steps(fault_home, [by_sensor, clicked])
    first, second = sorted(steps, key=lambda run_id: steps[run_id][0])
    first_done, (second_start, _, step_blocked) = steps[first][1], steps[second]
    assert second_start >= first_done, f"both orders steps traded at once: {steps}"
    second_blocked = step_blocked or _held_in_queue_for_the_pool(ui.output(), second)
    assert second_blocked, f"the runs never contended for the pool, so this proves nothing: {steps}"
    orders = broker_orders(fault_home.home)
    assert orders and {day for *_, day in orders} == {SESSION_KEY}, orders
    assert slow_broker.count("POST", "/v2/orders") >= len(orders)  # the orders went through the slow broker
    assert assert_no_duplicate_orders(fault_home.home) == len(orders)
    # Both runs materialized the orders; the one that waited placed none.
    assert sorted(map(_new_orders, _materializations(fault_home, ORDERS))) == [0, len(orders)]
    journal = pd.read_parquet(fault_home.home / "objects" / "teams" / TEAM / "journal" / "orders.parquet")
    assert sorted(journal["client_order_id"]) == sorted(client_id for _, client_id, *_ in orders)
    assert_no_run_left_started(fault_home.home)
    assert_store_reads_back(fault_home.home)
    print(
        f"one session's orders launched by the sensor, then from the webserver "
        f"{_created_apart(fault_home, by_sensor, clicked):.2f} s later: {len(orders)} order(s) at the "
        f"broker; the second orders step started {second_start - first_done:.1f} s after the first "
        f"ended (blocked by pool {broker_account_pool(TEAM)}: {second_blocked}); prepared "
        f"{prepared_s:.0f} s, launched {launched_s:.0f} s, all runs done {quiet_s:.0f} s, "
        f"test {time.monotonic() - started:.0f} s"
    )
