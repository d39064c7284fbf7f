"""Runs in containers: an instance whose run launcher is dagster-docker's ``DockerRunLauncher`` runs
one session's market data in a container of the platform image (built offline from the lock), to
success, with the run's logs in the instance and its objects in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml
from _images import platform_image
from _teams import SHIPPED_CONFIGS, write_two_small_teams

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.serving.launch_docker import docker_client

pytestmark = [pytest.mark.system, pytest.mark.timeout(1800)]  # the first build of the image takes minutes
SESSION = date(2024, 6, 14)
# What a run's container needs from the launching process (the daemon, here this test).
RUN_ENV = ("MLOPS_HOME", "MLOPS_PROJECT_DIR", "MLOPS_SANDBOX_URL", "MLOPS_SERVING_LAUNCHER")


@pytest.fixture(scope="module")
def image() -> str:
    client, why_not = docker_client(timeout_s=60)
    if client is None:
        pytest.skip(f"Docker engine test: {why_not} (CI starts one with .ci/docker-engine.sh)")
    return platform_image()


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
    image: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
            docker_client(timeout_s=60)[0].containers.get(container_id).remove(force=True)
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
