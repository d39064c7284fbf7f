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
from datetime import date, timedelta

import dagster as dg
import httpx
import pytest
from conftest import TEAM_KEYS, TEAMS, ServiceWorld, runs_left_started, stored_objects_read_back, when

from mlops_pipeline.assets.sessions import session_ticker_key
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.resources.market_data import market_data_from_settings
from mlops_pipeline.session_runner import SessionReport

pytestmark = pytest.mark.integration

S3_SESSION = date(2024, 3, 20)
BROKER_SESSION = date(2024, 3, 21)
MARKET_DATA_SESSION = date(2024, 3, 22)
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


def test_s3_endpoint_stopped_mid_session_then_restarted(world: ServiceWorld) -> None:
    world.open_market(S3_SESSION)
    tsla_market = str(session_ticker_key(S3_SESSION, "TSLA"))
    # S3 goes away as TSLA's market data is fetched (MSFT's is stored by then) and comes back once
    # that partition has failed, while the session goes on.
    world.proxy.add(_rule_before_tsla_fetch(world))
    restarted: dict[str, float] = {}

    def restart() -> None:
        world.moto.start()
        restarted["at"] = time.monotonic()

    when(lambda: _failed_run("market_daily", tsla_market), restart)
    report = world.run(S3_SESSION)

    failed = _by_status(report).get("failure", [])
    assert [(job, partition) for job, partition, _ in failed] == [("market_daily", "TSLA")], report.runs
    cause = failed[0][2]
    assert f"object store (S3 at {world.moto.url}): put s3://faults-objects/market/prices/TSLA" in cause, (
        cause
    )
    skipped = {(job, partition) for job, partition, _ in _by_status(report).get("skipped", [])}
    assert {("blue_train", "TSLA"), ("blue_predict", "TSLA")} <= skipped
    assert all(run.status in ("success", "up to date") for run in report.runs if run.job.startswith("red_"))
    store = world.store()
    assert store.exists(prices_key("MSFT", S3_SESSION)) and not store.exists(prices_key("TSLA", S3_SESSION))
    _assert_clean(world)

    rerun = world.run(S3_SESSION)
    world.timings["S3 recovery"] = time.monotonic() - restarted["at"]
    assert rerun.ok, rerun.runs
    assert store.exists(prices_key("TSLA", S3_SESSION))
    _assert_clean(world)


def _rule_before_tsla_fetch(world: ServiceWorld):  # type: ignore[no-untyped-def]
    from _fault_proxy import Rule

    return Rule(path="/query", query={"symbol": "TSLA"}, before=world.moto.stop)
