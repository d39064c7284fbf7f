"""Dagster and MLflow on a real PostgreSQL server: history survives restarting the servers, and the
deployed storage (``mlops_pipeline.postgres_storage``) keeps its connections between uses."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml
from _net import free_port, stop_process, wait_for_http
from _postgres import Postgres

from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.postgres_storage import CONNECTIONS_KEPT, PooledPostgresStorage
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.session_runner import run_session

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNS_QUERY = (
    "{ runsOrError { __typename ... on Runs { results { runId jobName status tags { key value } } } } }"
)


def _postgres_instance_yaml(pg: Postgres, database: str) -> dict:
    """deploy/dagster/dagster.yaml's storage on the test's server."""
    deployed = yaml.safe_load((REPO_ROOT / "deploy" / "dagster" / "dagster.yaml").read_text(encoding="utf-8"))
    storage = deployed["storage"]
    storage["custom"]["config"]["postgres_db"] = {
        "hostname": pg.host,
        "port": pg.port,
        "username": pg.user,
        "password": {"env": "MLOPS_TEST_PG_PASSWORD"},
        "db_name": database,
    }
    return {"telemetry": {"enabled": False}, "storage": storage}


def _start_webserver(port: int, env: dict[str, str]) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "dagster_webserver", "-m", "mlops_pipeline.definitions",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout_s=120)
    return process


def _runs(port: int) -> list[dict]:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": RUNS_QUERY}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]["runsOrError"]["results"]


@pytest.mark.system
def test_daily_runs_survive_a_webserver_restart(
    postgres: Postgres, project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres.create_database("dagster_test")
    dagster_home = isolated_env / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(
        yaml.safe_dump(_postgres_instance_yaml(postgres, "dagster_test"))
    )
    monkeypatch.setenv("MLOPS_TEST_PG_PASSWORD", postgres.password)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    (project / "teams" / "red.yaml").write_text("tickers: [MSFT]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").unlink()
    sandbox = start_sandbox_thread(SandboxConfig(today=date(2024, 3, 27)))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
    try:
        platform = load_platform(load_settings())
        assert platform.last_session == date(2024, 3, 27)  # the sandbox's today
        with dg.DagsterInstance.get():  # its tables created, as a deployment's first start does
            pass
        opened_before = postgres.sessions_opened("dagster_test")
        report = run_session(platform, platform.last_session)
        assert report.ok and report.total_count > 0
        # The session's statements went through this process's kept connections; only the instance's
        # opening inspects each storage's tables on a connection of its own. Dagster's storage opens
        # one per statement group: 512 for these six runs.
        opened = postgres.sessions_opened("dagster_test") - opened_before
        assert opened <= 3 + 2 * CONNECTIONS_KEPT, f"{opened} connections for {len(report.runs)} runs"
        run_ids = {run.run_id for run in report.runs}
        assert None not in run_ids

        env = dict(os.environ)
        port = free_port()
        for _restart in range(2):
            webserver = _start_webserver(port, env)
            try:
                runs = _runs(port)
            finally:
                stop_process(webserver)
            assert run_ids <= {run["runId"] for run in runs}
            ours = [run for run in runs if run["runId"] in run_ids]
            assert {run["status"] for run in ours} == {"SUCCESS"}
            partitions = {
                (run["jobName"], {tag["key"]: tag["value"] for tag in run["tags"]}["dagster/partition"])
                for run in ours
            }
            assert ("market_daily", "2024-03-27|MSFT") in partitions and (
                "red_train",
                "2024-03-27|MSFT",
            ) in partitions
            assert ("red_trade", "2024-03-27") in partitions and ("rank_teams", "2024-03-27") in partitions
    finally:
        sandbox.stop()


@pytest.mark.system
def test_kept_connections_survive_the_server_closing_them_and_are_never_shared_with_a_fork(
    postgres: Postgres,
) -> None:
    import sqlalchemy as db

    postgres.create_database("dagster_kept")
    storage = PooledPostgresStorage(postgres.url("dagster_kept"))

    def backend() -> int:
        with storage.run_storage.connect() as connection:
            return int(connection.execute(db.text("SELECT pg_backend_pid()")).scalar_one())

    kept = backend()
    assert backend() == kept  # the same connection, kept between uses
    postgres.terminate_backend(kept)  # an idle connection the server dropped (a restart, a timeout)
    replaced = backend()
    assert replaced != kept  # found closed before use and replaced: no failed statement

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a forked process (a run launcher's fork) opens its own
        try:
            os.write(write, str(backend()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    in_child = int(os.read(read, 32))
    os.close(read)
    assert in_child not in (kept, replaced)
    assert backend() == replaced  # the parent's connection, untouched by the child


@pytest.mark.system
def test_mlflow_server_with_postgres_backend_keeps_runs(postgres: Postgres, tmp_path: Path) -> None:
    postgres.create_database("mlflow_test")
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", postgres.url("mlflow_test"),
        "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--serve-artifacts",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=120)
        return process

    import mlflow
    from mlflow import MlflowClient

    server = start()
    try:
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment_id = client.create_experiment("red")
        run = client.create_run(experiment_id, tags={"team": "red"})
        client.log_metric(run.info.run_id, "mae", 1.25, step=1)
        client.log_text(run.info.run_id, "hello", "notes/hello.txt")
        client.set_terminated(run.info.run_id)
    finally:
        stop_process(server)
    server = start()
    try:
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        again = client.get_run(run.info.run_id)
        assert again.data.metrics["mae"] == 1.25 and again.data.tags["team"] == "red"
        mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
        text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/hello.txt")
        assert text == "hello"
    finally:
        stop_process(server)
