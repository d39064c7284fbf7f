"""Production mode end to end: the real AlphaVantage and Alpaca code paths against the sandbox.

``MLOPS_MARKET_DATA=alphavantage`` and ``MLOPS_BROKER=alpaca`` are pointed at a sandbox server on
loopback through ``MLOPS_ALPHAVANTAGE_BASE_URL`` and ``MLOPS_ALPACA_URL``, with distinct keys per
team, and every step of the README's "Going live" section runs through the ``mlops`` CLI: once with
a premium key (objects and DVC on S3, an MLflow tracking server, Docker serving when an engine
answers), once with a free key (compact raw prices, 25 requests a day, burst limit on).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import httpx
import pytest
from _mlflow_server import running_mlflow_server
from _teams import write_two_small_teams
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.budget import RequestBudget
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.resources.market_data import SANDBOX_API_KEY, market_data_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.alphavantage_api import render_daily_csv
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.serving.launch import Deployment
from mlops_pipeline.serving.predictions import read_predictions

pytestmark = pytest.mark.integration
runner = CliRunner()

REPLAY = (date(2024, 3, 26), date(2024, 3, 27))  # Tue (models train), Wed
TODAY = REPLAY[-1]  # the sandbox's today: the broker's last completed session


def _distinctive(prefix: str) -> str:
    """A value made for this test run: found anywhere later, it can only have leaked from here."""
    return f"{prefix}-{secrets.token_hex(10)}"


PREMIUM_KEY = _distinctive("av-premium")
FREE_KEY = _distinctive("av-free")
SECRETS = {
    name: _distinctive(name.lower())
    for name in (
        "RED_ALPACA_API_KEY",
        "RED_ALPACA_SECRET_KEY",
        "BLUE_ALPACA_API_KEY",
        "BLUE_ALPACA_SECRET_KEY",
        "MLOPS_SERVING_TOKEN",
    )
}


def _production_env(monkeypatch: pytest.MonkeyPatch, sandbox_url: str, api_key: str, premium: bool) -> None:
    monkeypatch.setenv("MLOPS_MARKET_DATA", "alphavantage")
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", api_key)
    monkeypatch.setenv("MLOPS_ALPHAVANTAGE_PREMIUM", str(premium).lower())
    monkeypatch.setenv("MLOPS_ALPHAVANTAGE_BASE_URL", sandbox_url)
    monkeypatch.setenv("MLOPS_BROKER", "alpaca")
    monkeypatch.setenv("MLOPS_ALPACA_URL", sandbox_url)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _invoke(*args: str, expect: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == expect, result.output + repr(result.exception)
    return result.output


def _requests_served(sandbox_url: str) -> int:
    return int(httpx.get(f"{sandbox_url}/_sandbox/stats", timeout=5).json()["query_requests"])


def _budget() -> RequestBudget:
    """The request budget of the configured key, in the file the market-data resource counts in."""
    resource = market_data_from_settings(load_settings())
    return RequestBudget(
        resource.budget_path, os.environ["ALPHAVANTAGE_API_KEY"], daily_limit=resource.daily_budget
    )


def _broker_orders(sandbox_url: str, team: str) -> set[str]:
    """The client order ids on the team's paper account, read with the team's own keys."""
    headers = {
        "APCA-API-KEY-ID": SECRETS[f"{team.upper()}_ALPACA_API_KEY"],
        "APCA-API-SECRET-KEY": SECRETS[f"{team.upper()}_ALPACA_SECRET_KEY"],
    }
    response = httpx.get(f"{sandbox_url}/v2/orders", params={"status": "all"}, headers=headers, timeout=5)
    response.raise_for_status()
    return {order["client_order_id"] for order in response.json()}


@pytest.fixture
def mlflow_server(tmp_path: Path, moto_endpoint: str) -> Iterator[str]:
    """``mlflow server`` on loopback: SQLite under the platform home, artifacts on S3 (moto)."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="prod-mlflow")
    with running_mlflow_server(
        tmp_path / ".mlops" / "mlflow-server",
        "s3://prod-mlflow/artifacts",
        {"MLFLOW_S3_ENDPOINT_URL": moto_endpoint},
    ) as url:
        yield url


def _docker_or_none():  # type: ignore[no-untyped-def]
    from mlops_pipeline.serving.launch_docker import docker_client

    client, _ = docker_client()
    if client is None:
        return None
    try:
        client.images.get(os.environ.get("MLOPS_BASE_IMAGE", "mlops-base:local"))
    except Exception:
        return None
    return client


def _files_containing(root: Path, secrets: dict[str, str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{name} in {path}" for name, value in secrets.items() if value.encode() in data]
    return found


def _s3_objects_containing(endpoint: str, secrets: dict[str, str]) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found = []
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for item in page.get("Contents", []):
                data = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read()
                found += [
                    f"{name} in s3://{bucket['Name']}/{item['Key']}"
                    for name, value in secrets.items()
                    if value.encode() in data
                ]
    return found


def test_premium_key_session_and_replay_on_production_paths(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    mlflow_server: str,
) -> None:
    write_two_small_teams(project)
    sandbox = start_sandbox_thread(
        SandboxConfig(
            today=TODAY,
            broker_db=tmp_path / "alpaca" / "broker.sqlite",
            premium_keys=frozenset({PREMIUM_KEY}),
        )
    )
    s3_secret = _distinctive("s3")
    try:
        _production_env(monkeypatch, sandbox.base_url, PREMIUM_KEY, premium=True)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_secret)
        monkeypatch.setenv("MLOPS_STORAGE", "s3")
        monkeypatch.setenv("MLOPS_S3_BUCKET", "prod-objects")
        monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", moto_endpoint)
        monkeypatch.setenv("MLOPS_DVC_REMOTE_URL", "s3://prod-dvc/store")
        monkeypatch.setenv("MLOPS_DVC_REMOTE_ENDPOINT_URL", moto_endpoint)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        initialized = json.loads(_invoke("storage", "init", "--json"))  # as compose's storage-init does
        assert {row["bucket"]: row["created"] for row in initialized} == {
            "prod-objects": True,
            "prod-dvc": True,
        }
        docker = _docker_or_none()
        if docker is not None:
            monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "docker")
            monkeypatch.setenv(
                "MLOPS_SERVING_BASE_IMAGE", os.environ.get("MLOPS_BASE_IMAGE", "mlops-base:local")
            )
        else:
            monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")

        # Going live, step by step: check the configuration, then replay a few sessions.
        shown = _invoke("config", "show", "--json")
        assert PREMIUM_KEY not in shown and SECRETS["RED_ALPACA_SECRET_KEY"] not in shown
        output = _invoke("compete", "--from", REPLAY[0].isoformat(), "--to", TODAY.isoformat())
        _assert_replayed(output, REPLAY)

        # One request per ticker per session: a full history first, then the compact window.
        assert _requests_served(sandbox.base_url) == 2 * len(REPLAY)
        settings = load_settings()
        store = object_store_from_settings(settings)
        prices, manifest = store.get_parquet_with_manifest(prices_key("MSFT", TODAY))
        assert manifest["source"] == "alphavantage" and manifest["adjusted"] is True
        assert prices["date"].iloc[-1].date() == TODAY and len(prices) > 5000

        predictions = read_predictions(store.scoped("teams/red"), "MSFT")
        assert [day.date() for day in predictions["as_of_date"]] == list(REPLAY)
        orders = store.get_parquet("teams/red/journal/orders.parquet")
        # Only the broker's last completed session trades; earlier sessions of a replay never do.
        assert {order_id.split("-")[1] for order_id in orders["client_order_id"]} == {f"{TODAY:%Y%m%d}"}
        assert len(store.get_parquet("teams/blue/journal/equity.parquet")) == len(REPLAY)

        # The leaderboard's page in Dagster's metadata is a presigned link that opens in a browser.
        with dg.DagsterInstance.get() as instance:
            leaderboard = instance.get_latest_materialization_event(dg.AssetKey(["leaderboard"]))
        assert leaderboard is not None and leaderboard.asset_materialization is not None
        link = leaderboard.asset_materialization.metadata["html"]
        assert isinstance(link, dg.UrlMetadataValue) and "X-Amz-Signature=" in link.url, link
        page = httpx.get(link.url, timeout=10)
        assert page.status_code == 200 and "<html" in page.text

        # The daily run of today again: no request, no new order.
        rerun = _invoke("run", "--date", TODAY.isoformat())
        assert "11/11 ok" in rerun, rerun
        assert _requests_served(sandbox.base_url) == 2 * len(REPLAY)
        assert len(store.get_parquet("teams/red/journal/orders.parquet")) == len(orders)

        # Each team traded its own paper account, authenticated with its own keys.
        assert _broker_orders(sandbox.base_url, "red") == set(orders["client_order_id"])
        assert not any(order_id.startswith("red-") for order_id in _broker_orders(sandbox.base_url, "blue"))

        deployment = Deployment.from_json(store.get_text("teams/red/serving/deployment.json"))
        secrets = {**SECRETS, "ALPHAVANTAGE_API_KEY": PREMIUM_KEY, "AWS_SECRET_ACCESS_KEY": s3_secret}
        leaks = _files_containing(settings.home_dir, secrets)
        leaks += _s3_objects_containing(moto_endpoint, secrets)
        if docker is not None:
            assert deployment.launcher == "docker"
            container = docker.containers.get(deployment.instance_id)
            image = docker.images.get(container.attrs["Config"]["Image"])
            inspected = {
                "container's configuration": json.dumps(container.attrs),
                "image's configuration": json.dumps(image.attrs),
                "container's log": container.logs().decode(errors="replace"),
            }
            for what, text in inspected.items():
                leaks += [f"{name} in the {what}" for name, value in secrets.items() if value in text]
            # The server got its token all the same: unauthenticated calls are refused.
            assert httpx.get(f"{deployment.endpoint_url}/info", timeout=5).status_code == 401
            authorized = {"Authorization": f"Bearer {SECRETS['MLOPS_SERVING_TOKEN']}"}
            assert httpx.get(f"{deployment.endpoint_url}/info", headers=authorized, timeout=5).is_success
        assert leaks == []
    finally:
        runner.invoke(app, ["stop"])  # the deployment records are in S3, out of the cleanup's sight
        sandbox.stop()


def test_free_key_waits_for_history_then_starts_from_an_import(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_two_small_teams(project)
    sandbox = start_sandbox_thread(
        SandboxConfig(today=TODAY, broker_db=tmp_path / "alpaca" / "broker.sqlite", burst_per_second=1.0)
    )
    try:
        _production_env(monkeypatch, sandbox.base_url, FREE_KEY, premium=False)
        monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")

        # Day one with a free key: 100 compact sessions, too few to train; the loop carries on.
        first_day = REPLAY[0]
        first = _invoke("run", "--date", first_day.isoformat())
        assert "failure" not in first and "skipped" not in first, first
        waiting = " ".join(first.split())
        assert "waiting for history: 65 usable sessions of the 315" in waiting, waiting
        assert "training starts on 2025-03-26" in waiting, waiting
        assert _requests_served(sandbox.base_url) == 2
        assert _budget().used() == 2
        settings = load_settings()
        store = object_store_from_settings(settings)
        prices, manifest = store.get_parquet_with_manifest(prices_key("TSLA", first_day))
        assert len(prices) == 99 and manifest["adjusted"] is False  # the latest 100, up to day one
        assert prices["date"].iloc[-1].date() == first_day
        assert read_predictions(store.scoped("teams/red"), "MSFT") is None
        assert store.get_parquet("teams/blue/journal/orders.parquet").empty

        # A rerun makes no request.
        _invoke("run", "--date", first_day.isoformat())
        assert _requests_served(sandbox.base_url) == 2

        # Seed the history from AlphaVantage CSV files (what a premium key downloads), up to day one.
        recordings = tmp_path / "recordings"
        recordings.mkdir()
        market = SyntheticMarket()  # the sandbox's market
        for symbol in ("MSFT", "TSLA"):
            csv = render_daily_csv(market.history(symbol, TODAY), adjusted=True).body
            (recordings / f"{symbol}.csv").write_text(csv, encoding="utf-8")
        served = _requests_served(sandbox.base_url)
        imported = _invoke("market", "import", str(recordings), "--until", first_day.isoformat())
        assert "imported 2 of 2 symbol(s)" in imported, imported
        # the import is in the assets' history, so the next run recomputes what depends on it
        assert f"{first_day}|MSFT, {first_day}|TSLA" in " ".join(imported.split()), imported
        prices, manifest = store.get_parquet_with_manifest(prices_key("TSLA", first_day))
        assert manifest["adjusted"] is True and prices["date"].iloc[-1].date() == first_day

        # Replay to today: day one trains at once; the compact raw window extends the imported history.
        output = _invoke("compete", "--from", first_day.isoformat(), "--to", TODAY.isoformat())
        _assert_replayed(output, REPLAY)
        assert _requests_served(sandbox.base_url) - served == 2 * (len(REPLAY) - 1)
        assert _budget().used() == 2 * len(REPLAY)
        prices, manifest = store.get_parquet_with_manifest(prices_key("TSLA", TODAY))
        assert manifest["adjusted"] is True and prices["date"].iloc[-1].date() == TODAY
        predictions = read_predictions(store.scoped("teams/red"), "MSFT")
        assert [day.date() for day in predictions["as_of_date"]] == list(REPLAY)
        orders = store.get_parquet("teams/blue/journal/orders.parquet")
        assert {order_id.split("-")[1] for order_id in orders["client_order_id"]} <= {f"{TODAY:%Y%m%d}"}
    finally:
        sandbox.stop()


def _assert_replayed(output: str, days: Sequence[date]) -> None:
    """Each session was one backfill that materialized every partition it targeted."""
    for day in days:
        done = re.search(rf"{day}: backfill \w+ completed_success, (\d+) of (\d+) asset partitions", output)
        assert done is not None and done[1] == done[2], output


def test_budget_exhausted_tickers_wait_and_nothing_stored_changes(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_two_small_teams(project)
    # The service's own daily quota allows one request: the second ticker gets the quota body.
    sandbox = start_sandbox_thread(SandboxConfig(today=TODAY, daily_limit=1))
    try:
        _production_env(monkeypatch, sandbox.base_url, FREE_KEY, premium=False)
        output = _invoke("run", "--date", TODAY.isoformat(), "--stage", "market")
        assert "waits for tomorrow's market-data budget" in output, output
        store = object_store_from_settings(load_settings())
        stored = [ticker for ticker in ("MSFT", "TSLA") if store.list_keys(f"market/prices/{ticker}/")]
        assert len(stored) == 1  # the throttled answer was never stored as data
        assert _budget().remaining() == 0  # the quota answer used the rest of today's budget

        # Every later run waits without a request until the budget day ends.
        served = _requests_served(sandbox.base_url)
        again = _invoke("run", "--date", TODAY.isoformat(), "--stage", "market")
        assert "waits" in again and _requests_served(sandbox.base_url) == served
    finally:
        sandbox.stop()


def test_refused_keys_and_unknown_symbols_name_team_variable_and_symbol(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_two_small_teams(project)
    (project / "teams" / "blue.yaml").write_text("tickers: [TSLA, NOSUCH]\n", encoding="utf-8")
    sandbox = start_sandbox_thread(SandboxConfig(today=TODAY, broker_db=tmp_path / "broker.sqlite"))
    try:
        _production_env(monkeypatch, sandbox.base_url, SANDBOX_API_KEY, premium=True)
        # Blue's key pair is known to the broker with another secret: refused (401).
        httpx.get(
            f"{sandbox.base_url}/v2/account",
            headers={"APCA-API-KEY-ID": SECRETS["BLUE_ALPACA_API_KEY"], "APCA-API-SECRET-KEY": "other"},
            timeout=5,
        )
        result = runner.invoke(
            app, ["run", "--date", TODAY.isoformat(), "--stage", "market", "--stage", "trade"]
        )
        assert result.exit_code == 1
        output = " ".join(result.output.split())
        assert "NOSUCH: AlphaVantage refused the request" in output and "ALPHAVANTAGE_API_KEY" in output
        assert "BLUE_ALPACA_API_KEY and BLUE_ALPACA_SECRET_KEY" in output
        store = object_store_from_settings(load_settings())
        assert store.exists(prices_key("TSLA", TODAY)) and not store.list_keys("market/prices/NOSUCH/")
        assert store.exists("teams/red/journal/equity.parquet")  # red carried on
    finally:
        sandbox.stop()
