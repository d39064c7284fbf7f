"""Services failing during a real trading session: the S3 endpoint, the MLflow tracking server,
the broker and AlphaVantage. Each scenario runs one session of the world (conftest.py) with its
fault injected mid-run, then checks what a user relies on: the affected partitions fail (or
wait) with one line naming the component, the others complete, every stored object reads back,
a rerun after the fault clears completes, no order is duplicated at the broker or in the
journal, and no run is left STARTED. The sessions follow the calendar, one per scenario."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from datetime import date

import dagster as dg
import httpx
import pytest
from _fault_proxy import Rule
from conftest import (
    AV_KEY,
    FIRST_SESSION,
    TEAM_KEYS,
    TEAMS,
    ServiceWorld,
    runs_left_started,
    stored_objects_read_back,
    when,
)

from mlops_pipeline.assets.sessions import session_ticker_key
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.budget import RequestBudget
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.resources.market_data import market_data_from_settings
from mlops_pipeline.session_runner import SessionReport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # the first test trains the world

BROKER_SESSION = FIRST_SESSION  # both teams open their positions: orders to place
S3_SESSION = date(2024, 3, 20)
MARKET_DATA_SESSION = date(2024, 3, 21)
MLFLOW_SESSION = date(2024, 3, 25)  # a Monday: the weekly retraining (Saturday's cron) is due


def _by_status(report: SessionReport) -> dict[str, list[tuple[str, str, str]]]:
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for run in report.runs:
        grouped.setdefault(run.status, []).append((run.job, run.partition, run.note))
    return grouped


def _failed_run(job: str, partition: str) -> bool:
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            filters=dg.RunsFilter(
                job_name=job, statuses=[dg.DagsterRunStatus.FAILURE], tags={"dagster/partition": partition}
            ),
            limit=1,
        )
    return bool(runs)


def _assert_clean(world: ServiceWorld) -> None:
    """Nothing half-written, no duplicate order at the broker or in the journal, no run STARTED."""
    store = world.store()
    assert stored_objects_read_back(store) == []
    for team in TEAMS:
        at_broker = world.broker_orders(team)
        assert [oid for oid, n in Counter(at_broker).items() if n > 1] == [], (
            f"{team}: duplicates at the broker"
        )
        journal = f"teams/{team}/journal/orders.parquet"
        if store.exists(journal):
            journaled = list(store.get_parquet(journal)["client_order_id"])
            assert [oid for oid, n in Counter(journaled).items() if n > 1] == [], (
                f"{team}: duplicate journal rows"
            )
            assert set(journaled) <= set(at_broker)
    assert runs_left_started() == []


def _team(team: str) -> dict[str, str]:
    """Headers that pick out one team's requests (its Alpaca key)."""
    return {"APCA-API-KEY-ID": TEAM_KEYS[f"{team.upper()}_ALPACA_API_KEY"]}


def test_broker_5xx_bursts_timeouts_a_429_storm_and_a_lost_answer(
    world: ServiceWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.open_market(BROKER_SESSION)
    trading = ("trade", "rank")
    # Blue: a timeout, a burst of 502s, a 503 on its order, then its order accepted and the answer
    # lost. Red: a 429 storm longer than the retries.
    blue, red = _team("blue"), _team("red")
    monkeypatch.setenv("MLOPS_BROKER_TIMEOUT_S", "2")
    timed_out = world.proxy.add(Rule(path="/v2/account", method="GET", headers=blue, delay_s=3.5))
    world.proxy.add(Rule(path="/v2/positions", method="GET", headers=blue, status=502, times=2))
    world.proxy.add(Rule(path="/v2/orders", method="POST", headers=blue, status=503))
    lost = world.proxy.add(Rule(path="/v2/orders", method="POST", headers=blue, drop_response=True))
    storm = world.proxy.add(
        Rule(
            path="/v2/orders",
            method="POST",
            headers=red,
            status=429,
            times=None,
            body=b'{"message": "rate limit"}',
        )
    )
    report = world.run(BROKER_SESSION, stages=trading)

    outcome = {run.job: run for run in report.runs}
    assert outcome["blue_trade"].status == "success", report.runs
    assert timed_out.abandoned == 1  # blue stopped waiting after MLOPS_BROKER_TIMEOUT_S, and retried
    assert lost.hits == 1  # blue placed an order and never heard back
    assert world.proxy.count("GET", "/v2/orders:by_client_order_id") >= 2  # looked up before retrying
    assert outcome["red_trade"].status == "failure", report.runs
    cause = outcome["red_trade"].note
    assert "broker: submit red-20240319-MSFT" in cause and "HTTP 429" in cause and "gave up after 4" in cause
    assert storm.hits == 4 and world.broker_orders("red") == []
    assert outcome["rank_teams"].status == "success"
    blue_orders = world.broker_orders("blue")
    assert len(blue_orders) == 1 == len(set(blue_orders))
    journal = world.store().get_parquet("teams/blue/journal/orders.parquet")
    assert list(journal["client_order_id"]) == blue_orders
    _assert_clean(world)

    world.proxy.clear()
    cleared = time.monotonic()
    rerun = world.run(BROKER_SESSION, stages=trading)
    world.timings["broker recovery"] = time.monotonic() - cleared
    assert rerun.ok, rerun.runs
    assert len(world.broker_orders("red")) == 1 and world.broker_orders("blue") == blue_orders
    _assert_clean(world)


def test_s3_endpoint_stopped_mid_session_then_restarted(world: ServiceWorld) -> None:
    world.open_market(S3_SESSION)
    tsla_market = str(session_ticker_key(S3_SESSION, "TSLA"))
    # S3 goes away as TSLA's market data is fetched (MSFT's is stored by then) and comes back once
    # that partition has failed, while the session goes on.
    world.proxy.add(Rule(path="/query", query={"symbol": "TSLA"}, before=world.moto.stop))
    restarted: dict[str, float] = {}

    def restart() -> None:
        world.moto.start()
        restarted["at"] = time.monotonic()

    when(lambda: _failed_run("market_daily", tsla_market), restart)
    until_models = ("market", "train")  # the stages that read and write the most objects
    report = world.run(S3_SESSION, stages=until_models)

    failed = _by_status(report).get("failure", [])
    assert [(job, partition) for job, partition, _ in failed] == [("market_daily", "TSLA")], report.runs
    cause = failed[0][2]
    assert f"object store (S3 at {world.moto.url}): put s3://faults-objects/market/prices/TSLA" in cause, (
        cause
    )
    skipped = {(job, partition) for job, partition, _ in _by_status(report).get("skipped", [])}
    assert skipped == {("blue_train", "TSLA")}
    assert all(run.status in ("success", "up to date") for run in report.runs if run.job.startswith("red_"))
    store = world.store()
    assert store.exists(prices_key("MSFT", S3_SESSION)) and not store.exists(prices_key("TSLA", S3_SESSION))
    _assert_clean(world)

    rerun = world.run(S3_SESSION, stages=until_models)
    world.timings["S3 recovery"] = time.monotonic() - restarted["at"]
    assert rerun.ok, rerun.runs
    assert store.exists(prices_key("TSLA", S3_SESSION))
    _assert_clean(world)


# AlphaVantage's own bodies (HTTP 200), as the service sends them.
LEGACY_THROTTLE = (
    b'{"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute '
    b"and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target "
    b'a higher API call frequency."}'
)
BURST = (
    b'{"Information": "Thank you for using Alpha Vantage! Please consider spreading out your free API '
    b"requests more sparingly (1 request per second). You may subscribe to any of the premium plans at "
    b'https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day)."}'
)
DAILY_QUOTA = (
    f'{{"Information": "We have detected your API key as {AV_KEY} and our standard API rate limit is '
    "25 requests per day. Please subscribe to any of the premium plans at "
    'https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}'
).encode()


def test_alphavantage_throttled_then_daily_budget_exhausted(world: ServiceWorld) -> None:
    world.open_market(MARKET_DATA_SESSION)
    market = ("market",)
    world.proxy.add(Rule(path="/query", query={"symbol": "MSFT"}, status=200, body=LEGACY_THROTTLE))
    world.proxy.add(Rule(path="/query", query={"symbol": "MSFT"}, status=200, body=BURST))
    world.proxy.add(Rule(path="/query", query={"symbol": "TSLA"}, status=200, body=DAILY_QUOTA))
    report = world.run(MARKET_DATA_SESSION, stages=market)

    outcome = {run.partition: run for run in report.runs}
    assert outcome["MSFT"].status == "success", report.runs  # throttled twice, then served
    assert world.proxy.count("GET", "/query") == 4
    waiting = outcome["TSLA"]
    assert waiting.status == "waiting", report.runs
    assert "TSLA waits for tomorrow's market-data budget" in waiting.note
    assert "resets at" in waiting.note and " (in " in waiting.note, waiting.note
    assert AV_KEY not in waiting.note  # the service's message quotes the key; the line does not
    store = world.store()
    prices, manifest = store.get_parquet_with_manifest(prices_key("MSFT", MARKET_DATA_SESSION))
    assert prices["date"].iloc[-1].date() == MARKET_DATA_SESSION == date.fromisoformat(manifest["as_of"])
    assert prices["close"].notna().all()
    assert not store.exists(prices_key("TSLA", MARKET_DATA_SESSION))  # the quota body is not data
    resource = market_data_from_settings(load_settings())  # its key is resolved only inside a run
    budget = RequestBudget(resource.budget_path, AV_KEY, daily_limit=resource.daily_budget)
    assert budget.remaining() == 0

    # Until the budget day ends, a rerun waits without asking.
    again = world.run(MARKET_DATA_SESSION, stages=market)
    assert {run.partition: run.status for run in again.runs}["TSLA"] == "waiting"
    assert world.proxy.count("GET", "/query") == 4
    _assert_clean(world)

    # Midnight in New York: today's usage becomes yesterday's; the next run completes.
    with sqlite3.connect(budget.path) as connection:
        connection.execute("UPDATE request_usage SET day = date(day, '-1 day')")
    assert budget.remaining() == budget.daily_limit
    cleared = time.monotonic()
    rerun = world.run(MARKET_DATA_SESSION, stages=market)
    world.timings["market data recovery"] = time.monotonic() - cleared
    assert rerun.ok, rerun.runs
    assert store.exists(prices_key("TSLA", MARKET_DATA_SESSION))
    _assert_clean(world)


def _running_mlflow_run(url: str, experiment: str) -> bool:
    """Whether the experiment has a run in progress (False while the server does not answer)."""
    try:
        found = httpx.get(
            f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment}, timeout=2
        )
        if found.status_code != 200:
            return False
        runs = httpx.post(
            f"{url}/api/2.0/mlflow/runs/search",
            json={
                "experiment_ids": [found.json()["experiment"]["experiment_id"]],
                "filter": "attributes.status = 'RUNNING'",
            },
            timeout=2,
        )
        return bool(runs.json().get("runs"))
    except httpx.HTTPError:
        return False


def test_mlflow_server_stopped_mid_training_then_restarted(world: ServiceWorld) -> None:
    world.open_market(MLFLOW_SESSION)
    until_models = ("market", "train")
    red_train = str(session_ticker_key(MLFLOW_SESSION, "MSFT"))
    # Blue retrains first; the server goes away while red's weekly retraining runs, and an operator
    # brings it back once red's training has failed.
    when(lambda: _running_mlflow_run(world.mlflow.url, "red"), world.mlflow.stop)
    restarted: dict[str, float] = {}

    def restart() -> None:
        world.mlflow.start()
        restarted["at"] = time.monotonic()

    when(lambda: _failed_run("red_train", red_train), restart, timeout_s=300)
    report = world.run(MLFLOW_SESSION, stages=until_models)

    outcome = {run.job: run for run in report.runs if run.job.endswith("_train")}
    assert outcome["blue_train"].status == "success", report.runs
    assert outcome["red_train"].status == "failure", report.runs
    cause = outcome["red_train"].note
    assert f"team red, MSFT: MLflow at {world.mlflow.url}" in cause and "\n" not in cause, cause
    _wait_for(lambda: "at" in restarted)
    _assert_clean(world)

    rerun = world.run(MLFLOW_SESSION, stages=until_models)
    world.timings["MLflow recovery"] = time.monotonic() - restarted["at"]
    assert rerun.ok, rerun.runs
    assert {run.job: run.status for run in rerun.runs}["red_train"] == "success"
    _assert_clean(world)


def _wait_for(condition, timeout_s: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
