"""Registry resolution, bundle export to MLflow, and the process launcher's zero-downtime swap."""

from __future__ import annotations

import threading

import httpx
import pytest
from _serving_models import ROW_FEATURES, Registry, TrainedModels, log_ludwig_run, set_champion

from mlops_pipeline.serving.bundle import ensure_run_bundle
from mlops_pipeline.serving.deployment import deploy_team
from mlops_pipeline.serving.launch import Deployment, LaunchError
from mlops_pipeline.serving.launch_process import ProcessLauncher
from mlops_pipeline.serving.registry import ModelRegistry
from mlops_pipeline.serving.sources import ModelSourceError, parse_model_ref, resolve

pytestmark = pytest.mark.integration


def test_parse_model_refs(tmp_path) -> None:
    assert parse_model_ref("models:/red-AAPL@champion").alias == "champion"
    assert parse_model_ref("models:/red-AAPL/3").version == "3"
    assert parse_model_ref("a" * 32).run_id == "a" * 32
    named = parse_model_ref(f"mine={tmp_path}")
    assert (named.name, named.path) == ("mine", tmp_path)
    for bad in ("models:/x@", "models:/x/y/z", str(tmp_path / "missing"), "bad name!=x"):
        with pytest.raises(ModelSourceError):
            parse_model_ref(bad)


def test_resolve_alias_and_unknown_model(registry: Registry) -> None:
    resolved = resolve(parse_model_ref("models:/red-AAPL@champion"), registry.tracking_uri)
    assert resolved.run_id == registry.run_ids["red-AAPL"]
    assert resolved.aliases == ["champion"] and resolved.source == f"models:/red-AAPL/{resolved.version}"
    with pytest.raises(ModelSourceError, match="red-NOPE"):
        resolve(parse_model_ref("models:/red-NOPE@champion"), registry.tracking_uri)


def test_models_downloaded_from_the_registry_leave_nothing_behind_once_loaded(
    registry: Registry, tmp_path
) -> None:
    downloads = tmp_path / "downloads"
    served = ModelRegistry([parse_model_ref("models:/red-AAPL@champion")], registry.tracking_uri, downloads)
    served.load()
    assert served.ready, served.reason
    assert set(served.models) == {"red-AAPL"}
    assert list(downloads.iterdir()) == []  # the bundle was downloaded here, then removed


def test_bundle_export_is_logged_once(registry: Registry, trained: TrainedModels) -> None:
    from mlflow import MlflowClient

    run_id = log_ludwig_run(registry.tracking_uri, None, "red", "TSLA", trained.direction_dir)
    assert ensure_run_bundle(registry.tracking_uri, run_id) is True
    assert ensure_run_bundle(registry.tracking_uri, run_id) is False
    logged = {item.path for item in MlflowClient(registry.tracking_uri).list_artifacts(run_id, "inference")}
    assert {"inference/serving.json", "inference/inference_predictor-cpu.pt"} <= logged


def _predict(endpoint_url: str) -> httpx.Response:
    return httpx.post(f"{endpoint_url}/predict?model=red-AAPL", data=ROW_FEATURES, timeout=10)


def test_process_deploy_noop_swap_and_failed_start(
    registry: Registry, trained: TrainedModels, tmp_path, tmp_path_factory
) -> None:
    kwargs = {
        "mode": "process",
        "tracking_uri": registry.tracking_uri,
        "work_dir": tmp_path,
        "base_image": "unused",
    }
    first, changed, missing = deploy_team("red", ["AAPL", "MSFT", "NVDA"], previous=None, **kwargs)
    launcher = ProcessLauncher(tmp_path / "logs")
    try:
        assert changed and first.launcher == "process" and "NVDA" in missing
        assert set(first.models) == {"red-AAPL", "red-MSFT"}
        info = httpx.get(f"{first.endpoint_url}/info", timeout=5).json()
        assert {model["name"]: model["version"] for model in info["models"]} == {
            name: spec["version"] for name, spec in first.models.items()
        }
        assert info["models"][0]["aliases"] == ["champion"]

        again, changed, _ = deploy_team("red", ["AAPL", "MSFT"], previous=first, **kwargs)
        assert not changed and again == first

        # A new champion version: swap while a client keeps calling the recorded endpoint.
        root = tmp_path_factory.mktemp("mlflow-v2")
        run_id = log_ludwig_run(registry.tracking_uri, str(root), "red", "AAPL", trained.return_dir)
        new_version = set_champion(registry.tracking_uri, "red-AAPL", run_id)
        current = {"deployment": first}
        failures, answered, stop = [], [], threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    response = _predict(current["deployment"].endpoint_url)
                    (answered if response.status_code == 200 else failures).append(response.status_code)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            second, changed, _ = deploy_team(
                "red",
                ["AAPL", "MSFT"],
                previous=first,
                publish=lambda new: current.update(deployment=new),  # as the serving asset records it
                **kwargs,
            )
        finally:
            stop.set()
            worker.join()
        assert changed and second.models["red-AAPL"]["version"] == new_version
        assert failures == [] and len(answered) > 5
        assert not launcher.running(first.instance_id)
        assert _predict(second.endpoint_url).status_code == 200

        # A model that cannot load: the launch fails with the server's logs, the old server stays.
        set_champion(registry.tracking_uri, "red-AAPL", registry.run_ids["red-AAPL"])
        broken = Deployment(**{**second.__dict__, "models": {}})
        with pytest.raises(LaunchError, match="server logs"):
            from mlops_pipeline.serving import launch

            launch.deploy(
                launcher,
                "red",
                [resolve(parse_model_ref(f"bad={tmp_path}"), None)],
                {"bad": tmp_path},
                broken,
                ready_timeout_s=60,
            )
        assert _predict(second.endpoint_url).status_code == 200
    finally:
        for deployment in (first, locals().get("second")):
            if deployment is not None:
                launcher.stop(deployment.instance_id)


def test_container_credentials_travel_as_a_file_only_the_server_reads(tmp_path) -> None:
    import tarfile

    from mlops_pipeline.serving.launch_docker import (
        CREDENTIALS_FILE,
        CREDENTIALS_FILE_ENV,
        SERVER_UID,
        credentials_archive,
        load_credentials_file,
    )

    token, s3_key = "t0k", "s3"
    archive = tmp_path / "credentials.tar"
    archive.write_bytes(credentials_archive({"MLOPS_SERVING_TOKEN": token, "AWS_SECRET_ACCESS_KEY": s3_key}))
    with tarfile.open(archive) as tar:
        entry = tar.getmember(CREDENTIALS_FILE.lstrip("/"))
        assert (entry.uid, entry.mode) == (SERVER_UID, 0o400)
        tar.extractall(tmp_path / "root", filter="tar")
    environ = {CREDENTIALS_FILE_ENV: str(tmp_path / "root" / CREDENTIALS_FILE.lstrip("/"))}
    environ["AWS_SECRET_ACCESS_KEY"] = s3_key.upper()
    load_credentials_file(environ)
    assert environ["MLOPS_SERVING_TOKEN"] == token
    assert environ["AWS_SECRET_ACCESS_KEY"] == s3_key.upper()  # the environment wins
