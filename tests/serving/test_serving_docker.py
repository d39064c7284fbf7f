"""The Docker launcher against a real engine, with models in a SQLite MLflow (no tracking server):
bundles mounted read-only, a swap without a failed request, a failing model kept out, and containers
on a Docker network answering by name from bundles in a named volume, as in the compose stack.

CI starts the engine and builds the base image with ``.ci/docker-engine.sh``. The serving image is
built once per code version (its tag is a hash of what goes into it) and kept between runs.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from pathlib import Path

import httpx
import pytest
from _serving_models import ROW_FEATURES, Registry, TrainedModels, log_ludwig_run, set_champion

from mlops_pipeline.serving import launch
from mlops_pipeline.serving.deployment import DockerPlacement, deploy_team
from mlops_pipeline.serving.launch import LaunchError
from mlops_pipeline.serving.launch_docker import DockerLauncher, docker_client
from mlops_pipeline.serving.sources import parse_model_ref, resolve

pytestmark = pytest.mark.system
BASE_IMAGE = os.environ.get("MLOPS_SERVING_BASE_IMAGE", "mlops-base:local")
IMAGE_CACHE = Path(tempfile.gettempdir()) / "mlops-serving-image-cache"


@pytest.fixture(scope="module")
def docker():
    client, why_not = docker_client(timeout_s=60)
    if client is None:
        pytest.skip(f"Docker engine test: {why_not} (CI starts one with .ci/docker-engine.sh)")
    return client


@pytest.fixture(scope="module")
def image(docker) -> str:
    from mlops_pipeline.serving.image import ensure_image

    return ensure_image(docker, IMAGE_CACHE, BASE_IMAGE)


def _serving_containers(docker, team: str) -> list[str]:
    labels = ["mlops.role=serving", f"mlops.team={team}"]
    return [container.id for container in docker.containers.list(all=True, filters={"label": labels})]


def test_auto_serves_mounted_bundles_swaps_without_downtime_and_keeps_a_failing_model_out(
    docker, image: str, registry: Registry, trained: TrainedModels, tmp_path: Path
) -> None:
    team = f"dock{secrets.token_hex(2)}"  # its own registered model and containers
    first_run = log_ludwig_run(
        registry.tracking_uri, str(tmp_path / "mlruns"), team, "AAPL", trained.return_dir
    )
    set_champion(registry.tracking_uri, f"{team}-AAPL", first_run)
    kwargs = {
        "mode": "auto",
        "tracking_uri": registry.tracking_uri,  # SQLite: no tracking server anywhere
        "work_dir": tmp_path,
        "base_image": BASE_IMAGE,
        "image_cache_dir": IMAGE_CACHE,
    }
    launcher = DockerLauncher(docker, image, {})
    try:
        first, changed, _ = deploy_team(team, ["AAPL"], previous=None, **kwargs)
        assert changed and first.launcher == "docker" and first.image == image, first.note
        assert first.note.startswith("docker: a Docker daemon answers"), first.note
        container = docker.containers.get(first.instance_id)
        assert container.status == "running" and container.labels["mlops.team"] == team
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        mounts = container.attrs["Mounts"]
        assert [(mount["Destination"], mount["RW"]) for mount in mounts] == [(f"/models/{team}-AAPL", False)]
        assert Path(mounts[0]["Source"]).is_relative_to(tmp_path / "bundles")
        assert not any(
            entry.startswith(("MLFLOW_TRACKING", "AWS_")) for entry in container.attrs["Config"]["Env"]
        )
        info = httpx.get(f"{first.endpoint_url}/info", timeout=5).json()
        served = info["models"][0]
        assert (served["run_id"], served["aliases"]) == (first_run, ["champion"])
        assert served["version"] == first.models[f"{team}-AAPL"]["version"]
        assert served["predictor_runtime"] == "onnxruntime"  # the image runs the ONNX graph

        again, changed, _ = deploy_team(team, ["AAPL"], previous=first, **kwargs)
        assert not changed and again.instance_id == first.instance_id

        second_run = log_ludwig_run(
            registry.tracking_uri, str(tmp_path / "mlruns"), team, "AAPL", trained.return_dir
        )
        new_version = set_champion(registry.tracking_uri, f"{team}-AAPL", second_run)
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
                team,
                ["AAPL"],
                previous=first,
                publish=lambda new: current.update(url=new.endpoint_url),
                **kwargs,
            )
        finally:
            stop.set()
            worker.join()
        assert changed and second.models[f"{team}-AAPL"]["version"] == new_version
        assert failures == [] and len(answered) > 5
        assert _serving_containers(docker, team) == [second.instance_id]
        assert httpx.get(f"{second.endpoint_url}/info", timeout=5).json()["models"][0]["run_id"] == second_run

        # A new model that cannot load: its container reports why and is removed; the old one serves.
        broken = tmp_path / "broken"
        broken.mkdir(mode=0o755)
        (broken / "serving.json").write_text("{not json")
        (broken / "serving.json").chmod(0o644)
        with pytest.raises(LaunchError, match=r"failed to load models: .*unreadable bundle manifest"):
            launch.deploy(
                launcher,
                team,
                [resolve(parse_model_ref(f"{team}-AAPL={broken}"), None)],
                {f"{team}-AAPL": broken},
                second,
                ready_timeout_s=60,
            )
        assert _serving_containers(docker, team) == [second.instance_id]
        response = httpx.post(f"{second.endpoint_url}/predict", data=ROW_FEATURES, timeout=10)
        assert response.status_code == 200
    finally:
        for container_id in _serving_containers(docker, team):
            launcher.stop(container_id)


def test_containers_on_a_docker_network_answer_by_name_with_bundles_from_a_named_volume(
    docker, image: str, registry: Registry, tmp_path: Path
) -> None:
    """The compose set-up: serving containers join the platform's network, the bundles are in a
    named volume the platform writes, and a container of that network calls the server by name."""
    suffix = secrets.token_hex(3)
    bundles_dir = tmp_path / "bundles"
    bundles_dir.mkdir()
    stack_label = {"com.docker.compose.project": f"mlops-test-{suffix}"}  # as compose labels its network
    network = docker.networks.create(f"mlops-test-{suffix}", labels=stack_label)
    volume = docker.volumes.create(
        f"mlops-test-bundles-{suffix}",
        driver="local",
        driver_opts={"type": "none", "o": "bind", "device": str(bundles_dir)},
    )
    deployment = None
    try:
        deployment, _, _ = deploy_team(
            "red",
            ["AAPL"],
            mode="docker",
            tracking_uri=registry.tracking_uri,
            work_dir=tmp_path,
            base_image=BASE_IMAGE,
            image_cache_dir=IMAGE_CACHE,
            bundles_dir=bundles_dir,
            placement=DockerPlacement(network=network.name, bundles_volume=volume.name),
            previous=None,
        )
        container = docker.containers.get(deployment.instance_id)
        assert deployment.endpoint_url == f"http://{container.name}:8000"
        assert [(mount["Name"], mount["RW"]) for mount in container.attrs["Mounts"]] == [(volume.name, False)]
        assert f"on network {network.name}" in deployment.note
        assert stack_label.items() <= container.labels.items()  # `compose down --remove-orphans` removes it
        request = {"dataframe_records": [{key: float(value) if " " not in value else value
                                          for key, value in ROW_FEATURES.items()}]}  # fmt: skip
        client_code = (
            "import json, sys, urllib.request as u\n"
            f"r = u.Request({deployment.endpoint_url + '/invocations'!r}, data=sys.argv[1].encode(),"
            " headers={'Content-Type': 'application/json'})\n"
            "print(u.urlopen(r, timeout=30).read().decode())\n"
        )
        output = docker.containers.run(
            BASE_IMAGE,
            ["python3", "-c", client_code, json.dumps(request)],
            network=network.name,
            remove=True,
        )
        predictions = json.loads(output)["predictions"]
        assert len(predictions) == 1 and "target_next_return_predictions" in predictions[0]
    finally:
        if deployment is not None:
            DockerLauncher(docker, image, {}).stop(deployment.instance_id)
        network.remove()
        volume.remove()


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


def test_a_build_keeps_the_newest_older_images_and_those_in_use(docker, image: str, tmp_path: Path) -> None:
    from mlops_pipeline.serving.image import IMAGE_REPOSITORY, prune_images

    def older(name: str) -> str:  # an image of its own, as an earlier version's build leaves one
        (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL probe={name}\n")
        tag = f"{IMAGE_REPOSITORY}:{name}-{secrets.token_hex(3)}"
        docker.images.build(path=str(tmp_path), tag=tag, network_mode="none", rm=True)
        return tag

    def tags() -> set[str]:
        return {tag for kept in docker.images.list(name=IMAGE_REPOSITORY) for tag in kept.tags}

    in_use, oldest, newer, newest = (older(name) for name in ("in-use", "oldest", "newer", "newest"))
    container = docker.containers.create(in_use, command=["true"])
    try:
        prune_images(docker, IMAGE_REPOSITORY, keep=image, spare=2)
        assert {image, in_use, newer, newest} <= tags()
        assert oldest not in tags()
        prune_images(docker, IMAGE_REPOSITORY, keep=image, spare=0)
        assert {image, in_use} <= tags()  # the current one, and the one a container still uses
        assert not {newer, newest} & tags()
    finally:
        container.remove(force=True)
    prune_images(docker, IMAGE_REPOSITORY, keep=image, spare=0)
    assert image in tags() and in_use not in tags()


def test_auto_says_why_it_serves_from_a_process_when_no_image_can_be_had(docker, tmp_path: Path) -> None:
    from mlops_pipeline.serving.deployment import select_launcher

    launcher, note = select_launcher("auto", tmp_path, "mlops-no-such-base:none", tmp_path, tmp_path)
    assert launcher.kind == "process"
    assert note.startswith("local process: no serving image: the base image mlops-no-such-base:none"), note
    with pytest.raises(LaunchError, match="MLOPS_SERVING_LAUNCHER=docker but no serving image"):
        select_launcher("docker", tmp_path, "mlops-no-such-base:none", tmp_path, tmp_path)
