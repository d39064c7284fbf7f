"""The Docker launcher against a real engine: build, launch, swap versions without a failed request.

CI starts the engine and builds the base image with ``.ci/docker-engine.sh``. Models come from an
MLflow tracking server on loopback (containers cannot read a host's SQLite file).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _mlflow_server import running_mlflow_server
from _serving_models import ROW_FEATURES, TrainedModels, log_ludwig_run, set_champion

from mlops_pipeline.serving.deployment import deploy_team
from mlops_pipeline.serving.launch_docker import DockerLauncher, docker_client

pytestmark = pytest.mark.system
BASE_IMAGE = os.environ.get("MLOPS_SERVING_BASE_IMAGE", "mlops-base:local")
IMAGE_CACHE = Path(tempfile.gettempdir()) / "mlops-serving-image-cache"


@pytest.fixture(scope="module")
def docker():
    client, why_not = docker_client()
    if client is None:
        pytest.skip(f"Docker engine test: {why_not} (CI starts one with .ci/docker-engine.sh)")
    return client


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(root, str(root / "artifacts")) as url:
        yield url


def test_docker_deploy_and_zero_downtime_swap(
    docker, tracking_server: str, trained: TrainedModels, tmp_path
) -> None:
    first_run = log_ludwig_run(tracking_server, None, "red", "AAPL", trained.return_dir)
    set_champion(tracking_server, "red-AAPL", first_run)
    kwargs = {
        "mode": "docker",
        "tracking_uri": tracking_server,
        "work_dir": tmp_path,
        "base_image": BASE_IMAGE,
        "image_cache_dir": IMAGE_CACHE,
    }
    launcher = None
    deployments = []
    try:
        first, changed, _ = deploy_team("red", ["AAPL"], previous=None, **kwargs)
        deployments.append(first)
        launcher = DockerLauncher(docker, first.image or "", {})
        container = docker.containers.get(first.instance_id)
        assert changed and first.launcher == "docker" and container.status == "running"
        assert container.labels["mlops.team"] == "red" and container.labels["mlops.role"] == "serving"
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        info = httpx.get(f"{first.endpoint_url}/info", timeout=5).json()
        assert info["models"][0]["run_id"] == first_run and info["code_version"] == first.code_version

        again, changed, _ = deploy_team("red", ["AAPL"], previous=first, **kwargs)
        assert not changed and again.instance_id == first.instance_id

        second_run = log_ludwig_run(tracking_server, None, "red", "AAPL", trained.return_dir)
        new_version = set_champion(tracking_server, "red-AAPL", second_run)
        current = {"url": first.endpoint_url}
        failures, answered, stop = [], [], threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    response = httpx.post(f"{current['url']}/predict", data=ROW_FEATURES, timeout=10)
                    (answered if response.status_code == 200 else failures).append(response.status_code)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            second, changed, _ = deploy_team(
                "red",
                ["AAPL"],
                previous=first,
                publish=lambda new: current.update(url=new.endpoint_url),
                **kwargs,
            )
            deployments.append(second)
        finally:
            stop.set()
            worker.join()
        assert changed and second.models["red-AAPL"]["version"] == new_version
        assert failures == [] and len(answered) > 5
        assert not launcher.running(first.instance_id)
        info = httpx.get(f"{second.endpoint_url}/info", timeout=5).json()
        assert info["models"][0]["run_id"] == second_run
    finally:
        if launcher is not None:
            for deployment in deployments:
                launcher.stop(deployment.instance_id)


def test_image_audit_finds_baked_secrets(docker, tmp_path) -> None:
    from mlops_pipeline.serving.image import audit_image

    assert audit_image(docker, BASE_IMAGE) == []
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nENV AWS_SECRET_ACCESS_KEY=baked-in\nRUN mkdir -p /app && echo X=1 > /app/.env\n"
    )
    tag = "mlops-audit-probe:test"
    docker.images.build(path=str(tmp_path), tag=tag, network_mode="none", rm=True)
    try:
        findings = audit_image(docker, tag)
    finally:
        docker.images.remove(tag, force=True)
    assert "environment variable AWS_SECRET_ACCESS_KEY is set in the image" in findings
    assert "file /app/.env" in findings
