"""The platform image in its two deployments, in one file so that one xdist worker builds the images
while the others go on with other tests.

Compose up in CI: docker-compose.yml with the opt-in Docker serving file and the CI override
(deploy/compose/ci.yml: PostgreSQL from Debian's packages, moto's S3 server for MinIO, images built
here on the local base image). One session runs through the daemon (its market data as the teams'
daily schedules request it, one queued run per session and ticker; every later stage by the
automation sensor), then: MLflow holds the runs (PostgreSQL) and their artifacts (S3), DVC pushed
to its bucket, the objects are in S3, the serving containers answered predictions over the compose
network, and ``down`` then ``up`` keeps the history. Two small teams (red on MSFT, blue on TSLA,
two-epoch copies of the shipped Ludwig configs) keep the session short; the stack is otherwise as
shipped.

Runs in containers: an instance whose run launcher is dagster-docker's ``DockerRunLauncher`` runs
one session's market data in a container of the platform image, to success, with the run's logs in
the instance and its objects in the store."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import httpx
import pytest
import yaml
from _compose import NETWORK, REPO_ROOT, SERVING_LABEL, Stack
from _images import BASE_IMAGE, mlflow_image, platform_image, postgres_image
from _net import free_port
from _teams import SHIPPED_CONFIGS, write_two_small_teams

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.serving.image import ensure_image
from mlops_pipeline.serving.launch_docker import COMPOSE_PROJECT_LABEL as PROJECT_LABEL
from mlops_pipeline.serving.launch_docker import docker_client

pytestmark = [pytest.mark.system, pytest.mark.timeout(3600)]  # a first build of the images takes minutes
SESSION = date(2024, 6, 14)
TICKERS = ("MSFT", "TSLA")
LOCATION = {"repositoryLocationName": "mlops_pipeline", "repositoryName": "__repository__"}
PORTS = ("PORT_DAGSTER", "PORT_MLFLOW", "PORT_MINIO", "PORT_MINIO_CONSOLE", "PORT_EVIDENTLY")
RUNS = """{ runsOrError { __typename ... on Runs { results { runId jobName status
              creationTime startTime endTime tags { key value } } } } }"""
# What a run's container needs from the launching process (the daemon; in the test below, the test).
RUN_ENV = ("MLOPS_HOME", "MLOPS_PROJECT_DIR", "MLOPS_SANDBOX_URL", "MLOPS_SERVING_LAUNCHER")
LEADERBOARD = """{ assetOrError(assetKey: {path: ["leaderboard"]}) { __typename
                     ... on Asset { assetMaterializations(limit: 5) { partition runId } } } }"""


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    client, why_not = docker_client(timeout_s=60)
    if client is None:
        pytest.skip(f"Docker engine test: {why_not} (CI starts one with .ci/docker-engine.sh)")
    # The serving image as the code location computes its tag (same code, same base image), built
    # here, where the package index is reachable; inside the stack it is found, not built.
    serving = ensure_image(client, Path(tempfile.gettempdir()) / "mlops-serving-image-cache", BASE_IMAGE)
    built = {
        "MLOPS_PLATFORM_IMAGE": platform_image(),
        "MLOPS_MLFLOW_IMAGE": mlflow_image(),
        "MLOPS_POSTGRES_IMAGE": postgres_image(),
    }
    sizes = {tag: round(client.images.get(tag).attrs["Size"] / 1024**2) for tag in [*built.values(), serving]}
    print(f"compose stack image sizes (MiB): {json.dumps(sizes)}")
    return built


@pytest.fixture
def stack(images: dict[str, str], project: Path, tmp_path: Path) -> Iterator[Stack]:
    """The stack with a .env's worth of fresh secrets and free host ports; removed afterwards
    (containers, serving containers, volumes, network) whatever happened."""
    write_two_small_teams(project)  # two-epoch copies of the shipped configs, mounted with the teams
    session_override = tmp_path / "session.yml"
    mounted = [f"{project / name}:/opt/mlops/{name}:ro" for name in ("teams", "ludwig_configs")]
    session_override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "sandbox": {"environment": {"MLOPS_SANDBOX_TODAY": str(SESSION)}},
                    "code-location": {"volumes": mounted},
                }
            }
        ),
        encoding="utf-8",
    )
    ports = {name: str(free_port()) for name in PORTS}
    variables = dict(
        **images,
        **ports,
        BASE_IMAGE=BASE_IMAGE,
        MLOPS_AUTOMATION_INTERVAL_S="5",  # each stage the sensor launches follows within 5 s, not 30
        POSTGRES_USER="mlops",
        POSTGRES_PASSWORD=secrets.token_urlsafe(16),
        MINIO_ROOT_USER="mlops",
        MINIO_ROOT_PASSWORD=secrets.token_urlsafe(16),
        MLOPS_EVIDENTLY_SECRET=secrets.token_urlsafe(16),
        MLOPS_S3_PUBLIC_ENDPOINT_URL=f"http://127.0.0.1:{ports['PORT_MINIO']}",
        MLOPS_EVIDENTLY_UI_URL=f"http://127.0.0.1:{ports['PORT_EVIDENTLY']}",
        DOCKER_GID=str(Path("/var/run/docker.sock").stat().st_gid),
    )
    files = [
        REPO_ROOT / "docker-compose.yml",
        REPO_ROOT / "deploy" / "compose" / "docker-serving.yml",
        REPO_ROOT / "deploy" / "compose" / "ci.yml",
        session_override,
    ]
    running = Stack("mlops-stack-test", files, tmp_path / "stack.env", variables)
    if (owner := running.foreign_owner()) is not None:
        pytest.skip(f"another compose stack holds the {owner} on this Docker engine")
    running.remove()  # what a killed earlier run left
    try:
        yield running
    finally:
        running.remove()


class PeakMemory:
    """The highest total resident memory of the stack, sampled with ``docker stats`` in a thread."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.peak_mib, self.done = stack, 0.0, threading.Event()
        self.samples = self.missed = 0
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(5):
            try:
                self.peak_mib = max(self.peak_mib, sum(self.stack.memory_mib().values()))
                self.samples += 1
            except subprocess.CalledProcessError:  # a container left between listing and stats
                self.missed += 1

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=180)


def launch_market_runs(stack: Stack) -> None:
    """The session's market runs, one per ticker, as the teams' daily schedules request them (a
    schedule ticks once a day): through the run queue, which the daemon drains."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=int(stack.variables["PORT_DAGSTER"]))
    for ticker in TICKERS:
        client.submit_job_execution(
            "market_daily",
            repository_location_name=LOCATION["repositoryLocationName"],
            repository_name=LOCATION["repositoryName"],
            tags={"dagster/partition": f"{SESSION}|{ticker}"},
        )


def runs(stack: Stack) -> list[dict[str, Any]]:
    return stack.graphql(RUNS)["runsOrError"]["results"]


def wait_for_session(stack: Stack, timeout_s: float = 2400) -> list[dict[str, Any]]:
    """Every run of the session, once the leaderboard of the session is materialized and no run is
    queued or running; fails at the first failed run, naming it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = runs(stack)
        failed = [run for run in current if run["status"] in {"FAILURE", "CANCELED"}]
        assert not failed, (
            f"failed runs: {failed}\n{stack.compose('logs', '--tail', '60', 'code-location')[-6000:]}"
        )
        ranked = stack.graphql(LEADERBOARD)["assetOrError"].get("assetMaterializations", [])
        busy = [run for run in current if run["status"] not in {"SUCCESS"}]
        if any(event["partition"] == str(SESSION) for event in ranked) and not busy:
            return current
        time.sleep(2)
    raise AssertionError(f"the session did not finish in {timeout_s:.0f} s: {runs(stack)}")


def mlflow_runs(stack: Stack) -> dict[str, str]:
    """MLflow's runs (id: artifact URI), through the published port as a browser reaches it."""
    base = f"{stack.url('PORT_MLFLOW')}/api/2.0/mlflow"
    experiments = httpx.post(f"{base}/experiments/search", json={"max_results": 100}, timeout=30).json()
    ids = [experiment["experiment_id"] for experiment in experiments["experiments"]]
    found = httpx.post(f"{base}/runs/search", json={"experiment_ids": ids, "max_results": 500}, timeout=30)
    return {run["info"]["run_id"]: run["info"]["artifact_uri"] for run in found.json().get("runs", [])}


def s3_keys(stack: Stack, bucket: str) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.url("PORT_MINIO"),
        aws_access_key_id=stack.variables["MINIO_ROOT_USER"],
        aws_secret_access_key=stack.variables["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def served_predictions(stack: Stack) -> dict[str, float]:
    """Per serving container on the compose network: predictions it served, read from its
    /metrics by name from inside the code-location container (as the pipeline calls it)."""
    names = docker_client(timeout_s=60)[0].containers.list(
        filters={"network": NETWORK, "label": SERVING_LABEL}
    )
    served = {}
    for container in names:
        metrics = stack.exec_python(
            "code-location",
            "import urllib.request; print(urllib.request.urlopen("
            f"'http://{container.name}:8000/metrics', timeout=10).read().decode())",
        )
        served[container.name] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("mlops_serving_rows_total")
        )
    return served


def test_the_stack_runs_a_session_through_the_daemon_and_keeps_its_history(stack: Stack) -> None:
    measured: dict[str, Any] = {}
    try:
        _session_and_history(stack, measured)
    finally:
        print(f"compose stack: {json.dumps(measured)}")


def _session_and_history(stack: Stack, measured: dict[str, Any]) -> None:
    measured["start_to_healthy_s"] = round(stack.up(), 1)
    assert httpx.get(f"{stack.url('PORT_DAGSTER')}/server_info", timeout=30).status_code == 200
    measured["idle_rss_mib"] = round(sum(stack.memory_mib().values()))

    started = time.monotonic()
    with PeakMemory(stack) as peak:
        launch_market_runs(stack)
        session_runs = wait_for_session(stack)
    measured["session_s"] = round(time.monotonic() - started, 1)
    launched_at = time.time() - measured["session_s"]

    def since_launch(at: float | None) -> float | None:
        return None if at is None else round(at - launched_at, 1)

    measured["runs_created_started_ended_s"] = sorted(
        (run["jobName"], *map(since_launch, (run["creationTime"], run["startTime"], run["endTime"])))
        for run in session_runs
    )  # by job, then creation
    measured["session_peak_rss_mib"] = round(peak.peak_mib)
    measured["session_memory_samples"] = {"taken": peak.samples, "missed": peak.missed}
    assert peak.samples > 0
    jobs = sorted(run["jobName"] for run in session_runs)
    assert jobs.count("market_daily") == len(TICKERS), jobs
    assert all(run["status"] == "SUCCESS" for run in session_runs)

    tracked = mlflow_runs(stack)
    assert tracked, "MLflow holds no run"
    assert all(uri.startswith("mlflow-artifacts:/") for uri in tracked.values()), tracked
    artifacts = s3_keys(stack, "mlflow")
    assert any(run_id in key for run_id in tracked for key in artifacts), artifacts[:20]
    assert any(key.startswith("store/") for key in s3_keys(stack, "dvc")), "DVC pushed nothing"
    objects = s3_keys(stack, "mlops")
    assert any(f"{SESSION}" in key for key in objects), objects[:20]

    served = served_predictions(stack)
    assert len(served) == 2 and all(rows >= 1 for rows in served.values()), served

    stack.down()  # the serving containers carry the stack's label: gone with it, the network too
    left = docker_client(timeout_s=60)[0].containers.list(
        all=True, filters={"label": f"{PROJECT_LABEL}={stack.project}"}
    )
    assert left == [], [container.name for container in left]
    measured["restart_to_healthy_s"] = round(stack.up(), 1)
    assert {run["runId"] for run in runs(stack)} >= {run["runId"] for run in session_runs}
    ranked = stack.graphql(LEADERBOARD)["assetOrError"]["assetMaterializations"]
    assert any(event["partition"] == str(SESSION) for event in ranked), ranked
    assert set(mlflow_runs(stack)) == set(tracked)


def _docker_instance_yaml(image: str, shared: Path) -> dict:
    """The deploy/dagster/dagster-docker.yaml launcher on this engine: the host network (the
    engine has no bridge here) and the test's folder mounted at the same path."""
    return {
        "telemetry": {"enabled": False},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"},
        "run_launcher": {
            "module": "dagster_docker",
            "class": "DockerRunLauncher",
            "config": {
                "image": image,
                "network": "host",
                "env_vars": list(RUN_ENV),
                "container_kwargs": {
                    "volumes": {str(shared): {"bind": str(shared), "mode": "rw"}},
                    "user": f"{os.getuid()}:{os.getgid()}",
                },
            },
        },
    }


def test_one_session_runs_in_a_container_of_the_platform_image(
    images: dict[str, str], project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = images["MLOPS_PLATFORM_IMAGE"]
    write_two_small_teams(project, SHIPPED_CONFIGS)  # the image's configs: only teams/ is mounted
    sandbox = start_sandbox_thread(SandboxConfig(today=SESSION))
    try:
        monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
        settings = load_settings()
        ensure_home(settings)
        instance_yaml = settings.dagster_home_path / "dagster.yaml"
        instance_yaml.write_text(yaml.safe_dump(_docker_instance_yaml(image, tmp_path)), encoding="utf-8")
        partition = f"{SESSION}|MSFT"
        tags = {"dagster/partition": partition, "dagster/partition/session": str(SESSION),
                "dagster/partition/ticker": "MSFT"}  # fmt: skip
        command = [sys.executable, "-m", "dagster", "job", "launch", "-m", "mlops_pipeline.definitions"]
        launched = subprocess.run(
            [*command, "-j", "market_daily", "--tags", json.dumps(tags)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert launched.returncode == 0, launched.stderr[-3000:]

        with dg.DagsterInstance.from_config(str(settings.dagster_home_path)) as instance:
            assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
            (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="market_daily"))
            deadline = time.monotonic() + 600
            while not run.is_finished and time.monotonic() < deadline:
                time.sleep(2)
                run = instance.get_run_by_id(run.run_id)
            logs = instance.all_logs(run.run_id)
            messages = [event.message or "" for event in logs]
            assert run.status == dg.DagsterRunStatus.SUCCESS, messages[-20:]
            container_id = run.tags["docker/container_id"]  # the launcher's container, on the run
            container = docker_client(timeout_s=60)[0].containers.get(container_id)
            assert "OMP_NUM_THREADS=1" in container.attrs["Config"]["Env"]  # one thread a run
            container.remove(force=True)
            steps = {
                event.step_key
                for event in logs
                if event.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS
            }
            assert steps == {"market__prices", "market__features"}, steps
            assert any(event.dagster_event_type == dg.DagsterEventType.RUN_START for event in logs)
            materialized = instance.get_latest_materialization_event(dg.AssetKey(["market", "features"]))
            assert materialized is not None and materialized.run_id == run.run_id

        store = object_store_from_settings(settings)
        prices = store.get_parquet(prices_key("MSFT", SESSION))
        assert prices["date"].iloc[-1].date() == SESSION
    finally:
        sandbox.stop()
