"""The fault-injection suite's platform: real components on loopback, each one stoppable.

``service_world`` (one per test module) runs the platform in production mode, as "Going live"
configures it, against local stand-ins for every service: the sandbox speaks AlphaVantage and
Alpaca behind a :class:`FaultProxy`, objects and DVC live in moto's S3 server, runs and models in
a real ``mlflow server``. Two small teams (red trades MSFT with a return model, blue TSLA with a
direction classifier) train once, on the world's first session, up to its predictions (its
trading, when both teams open their positions, is the broker scenario's); each scenario runs a later
session (the sandbox restarted with that session as its today, as the calendar moves) and
injects its fault during it. ``world`` re-applies the world's environment inside each test.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import httpx
import pytest
from _fault_proxy import FaultProxy
from _mlflow_server import MlflowServer
from _net import free_port
from _teams import write_two_small_teams
from moto.server import ThreadedMotoServer

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.resources.object_store import ObjectStore, object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import RunningSandbox, start_sandbox_thread
from mlops_pipeline.session_runner import SessionReport, run_session

REPO_ROOT = Path(__file__).resolve().parents[2]
AV_KEY = f"faults-av-{secrets.token_hex(8)}"  # made per run: found in an output, it leaked from here
TEAM_KEYS = {
    name: f"faults-{name.lower()}-{secrets.token_hex(8)}"
    for name in (
        "RED_ALPACA_API_KEY",
        "RED_ALPACA_SECRET_KEY",
        "BLUE_ALPACA_API_KEY",
        "BLUE_ALPACA_SECRET_KEY",
    )
}
TEAMS = {"red": "MSFT", "blue": "TSLA"}
FIRST_SESSION = date(2024, 3, 19)  # a Tuesday: the world trains its models on it
UNTIL_PREDICTIONS = ("market", "train", "serve", "predict")


def write_fault_teams(project: Path) -> None:
    """Red and blue, one ticker each, with two-epoch models on a short window (cheap to train)
    and permissive gates, so that each gets a champion on the first session."""
    write_two_small_teams(project, train_window_days=400, blue_min_confidence=0.501)


class MotoS3:
    """moto's S3 server on a fixed loopback port that can be stopped and started again; its
    objects live in this process, so they survive a restart as a real store's disks do."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@dataclass
class ServiceWorld:
    root: Path
    env: dict[str, str]
    proxy: FaultProxy
    moto: MotoS3
    mlflow: MlflowServer
    broker_db: Path
    sandbox: RunningSandbox | None = None
    today: date | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def open_market(self, today: date) -> None:
        """The sandbox as of ``today`` (its broker's last completed session), behind the proxy."""
        if self.sandbox is not None:
            self.sandbox.stop()
        self.sandbox = start_sandbox_thread(
            SandboxConfig(today=today, broker_db=self.broker_db, premium_keys=frozenset({AV_KEY}))
        )
        self.proxy.upstream = self.sandbox.base_url
        self.proxy.clear()
        self.today = today

    def run(self, day: date, stages: tuple[str, ...] | None = None) -> SessionReport:
        """One session through ``mlops run``'s runner, on a platform loaded afresh."""
        platform = load_platform(load_settings())
        if stages is None:
            return run_session(platform, day)
        return run_session(platform, day, stages=stages)

    def store(self) -> ObjectStore:
        return object_store_from_settings(load_settings())

    def broker_orders(self, team: str) -> list[str]:
        """Every client order id on the team's paper account (duplicates kept), read directly."""
        assert self.sandbox is not None
        headers = {
            "APCA-API-KEY-ID": TEAM_KEYS[f"{team.upper()}_ALPACA_API_KEY"],
            "APCA-API-SECRET-KEY": TEAM_KEYS[f"{team.upper()}_ALPACA_SECRET_KEY"],
        }
        response = httpx.get(
            f"{self.sandbox.base_url}/v2/orders",
            params={"status": "all", "limit": 500},
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        return [order["client_order_id"] for order in response.json()]


def _world_env(root: Path, proxy: FaultProxy, moto: MotoS3, mlflow_url: str) -> dict[str, str]:
    home = root / ".mlops"
    return {
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MLOPS_PROJECT_DIR": str(root / "project"),
        "MLOPS_SERVING_LAUNCHER": "process",
        **dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "testing"),  # moto takes any
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_MARKET_DATA": "alphavantage",
        "ALPHAVANTAGE_API_KEY": AV_KEY,
        "MLOPS_ALPHAVANTAGE_PREMIUM": "true",
        "MLOPS_ALPHAVANTAGE_BASE_URL": proxy.url,
        "MLOPS_ALPHAVANTAGE_DAILY_BUDGET": "500",
        "MLOPS_ALPHAVANTAGE_MIN_INTERVAL_S": "0",
        "MLOPS_BROKER": "alpaca",
        "MLOPS_ALPACA_URL": proxy.url,
        "MLOPS_STORAGE": "s3",
        "MLOPS_S3_BUCKET": "faults-objects",
        "MLOPS_S3_ENDPOINT_URL": moto.url,
        "MLOPS_DVC_REMOTE_URL": "s3://faults-dvc/store",
        "MLOPS_DVC_REMOTE_ENDPOINT_URL": moto.url,
        "MLFLOW_TRACKING_URI": mlflow_url,
        **TEAM_KEYS,
    }


@pytest.fixture(scope="module")
def service_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceWorld]:
    """The platform on production paths against loopback stand-ins, trained on its first session."""
    import shutil

    root = tmp_path_factory.mktemp("service-world")
    project = root / "project"
    shutil.copytree(REPO_ROOT / "teams", project / "teams")
    shutil.copytree(REPO_ROOT / "ludwig_configs", project / "ludwig_configs")
    write_fault_teams(project)
    moto = MotoS3()
    proxy = FaultProxy("http://127.0.0.1:9")
    mlflow = MlflowServer(
        root / "mlflow-server", "s3://faults-mlflow/artifacts", {"MLFLOW_S3_ENDPOINT_URL": moto.url}
    )
    env = _world_env(root, proxy, moto, mlflow.url)
    world = ServiceWorld(root, env, proxy, moto, mlflow, root / "broker.sqlite")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("MLOPS_", "ALPHAVANTAGE_", "DAGSTER_HOME", "MLFLOW_TRACKING_URI")):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        try:
            moto.start()
            s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
            for bucket in ("faults-objects", "faults-dvc", "faults-mlflow"):  # as the stack's init does
                s3.create_bucket(Bucket=bucket)
            mlflow.start()
            ensure_home(load_settings())
            world.open_market(FIRST_SESSION)
            started = time.monotonic()
            report = world.run(FIRST_SESSION, stages=UNTIL_PREDICTIONS)  # the trading is a scenario's
            world.timings["first session (training)"] = time.monotonic() - started
            assert report.ok, [run for run in report.runs if run.status != "success"]
            yield world
        finally:
            print(
                "fault suite timings (s):", {name: round(value, 1) for name, value in world.timings.items()}
            )
            from mlops_pipeline.serving.deployment import stop_deployment
            from mlops_pipeline.serving.launch import Deployment

            for team in TEAMS:
                try:
                    record = world.store().get_text(f"teams/{team}/serving/deployment.json")
                except Exception:
                    continue
                stop_deployment(Deployment.from_json(record))
            if world.sandbox is not None:
                world.sandbox.stop()
            proxy.stop()
            mlflow.stop()
            moto.stop()


@pytest.fixture
def world(service_world: ServiceWorld, monkeypatch: pytest.MonkeyPatch) -> ServiceWorld:
    """The module's world, its environment applied for this test."""
    for name, value in service_world.env.items():
        monkeypatch.setenv(name, value)
    service_world.proxy.clear()
    return service_world


def when(
    condition: Callable[[], bool], action: Callable[[], None], timeout_s: float = 180.0
) -> threading.Thread:
    """Run ``action`` in a background thread as soon as ``condition`` holds (polled every 0.1 s)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, name="fault-trigger", daemon=True)
    thread.start()
    return thread


def runs_left_started() -> list[str]:
    """Run ids of the instance still STARTED or STARTING."""
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    with dg.DagsterInstance.get() as instance:
        return [run.run_id for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses))]


def stored_objects_read_back(store: ObjectStore) -> list[str]:
    """Keys whose object does not read back whole, or whose manifest disagrees with its data (a
    session's prices manifest names that session, the last row's date); empty when all is well."""
    import json

    bad = []
    for key in store.list_keys():
        try:
            if key.endswith(".parquet"):
                frame, manifest = store.get_parquet_with_manifest(key)
                if key.startswith("market/prices/"):
                    session = key.rsplit("/", 1)[-1].removesuffix(".parquet")
                    last = frame["date"].iloc[-1].date().isoformat()
                    if not manifest.get("as_of") == last == session:
                        bad.append(f"{key}: manifest as_of {manifest.get('as_of')}, last row {last}")
            elif key.endswith(".json"):
                json.loads(store.get_text(key))
            else:
                store.get_bytes(key)
        except Exception as exc:  # any failure to read back is the finding
            bad.append(f"{key}: {type(exc).__name__}: {exc}")
    return bad
