"""The deployment files are valid: compose file, Dagster instance config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlops_pipeline.config.home import FREE_SLOTS_AFTER_RUN_END_S

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"POSTGRES_USER": "mlops", "POSTGRES_PASSWORD": "x" * 12, "MINIO_ROOT_USER": "mlops",
           "MINIO_ROOT_PASSWORD": "y" * 12, "MLOPS_EVIDENTLY_SECRET": "z" * 12}  # fmt: skip


def _compose_config(env_file: Path, *overrides: str) -> subprocess.CompletedProcess:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
    files = [part for name in ("docker-compose.yml", *overrides) for part in ("-f", str(REPO_ROOT / name))]
    command = [compose, "--env-file", str(env_file), *files, "config"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT)


def _env_file(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / "compose.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), encoding="utf-8")
    return path


@pytest.mark.system
def test_compose_file_is_valid_and_uses_env_secrets(tmp_path: Path) -> None:
    result = _compose_config(_env_file(tmp_path, SECRETS))
    assert result.returncode == 0, result.stderr
    rendered = result.stdout
    for service in ("postgres", "minio", "storage-init", "mlflow", "evidently", "code-location",
                    "dagster-webserver", "dagster-daemon"):  # fmt: skip
        assert f"  {service}:" in rendered
    assert "x" * 12 in rendered  # the secret reaches the services only through the environment
    committed = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "x" * 12 not in committed
    # the platform's own `mlops storage init` makes the buckets the MLflow server and the code use
    import yaml

    services = yaml.safe_load(rendered)["services"]
    assert services["storage-init"]["command"] == ["mlops", "storage", "init"]
    assert services["mlflow"]["depends_on"]["storage-init"]["condition"] == "service_completed_successfully"
    destination = services["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"]
    assert services["code-location"]["environment"]["MLOPS_MLFLOW_ARTIFACTS_DESTINATION"] == destination


@pytest.mark.system
def test_docker_serving_is_opt_in_and_joins_the_stack_network(tmp_path: Path) -> None:
    import yaml

    plain = yaml.safe_load(_compose_config(_env_file(tmp_path, SECRETS)).stdout)
    assert not any("docker.sock" in str(service.get("volumes")) for service in plain["services"].values())
    override = "deploy/compose/docker-serving.yml"
    refused = _compose_config(_env_file(tmp_path, SECRETS), override)
    assert refused.returncode != 0 and "set DOCKER_GID in .env" in refused.stderr
    result = _compose_config(_env_file(tmp_path, {**SECRETS, "DOCKER_GID": "998"}), override)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    code = rendered["services"]["code-location"]
    assert "/var/run/docker.sock:/var/run/docker.sock:rw" in code["volumes"] and code["group_add"] == ["998"]
    assert rendered["networks"]["default"]["name"] == code["environment"]["MLOPS_SERVING_NETWORK"]
    volume = code["environment"]["MLOPS_SERVING_BUNDLES_VOLUME"]
    assert rendered["volumes"]["serving-bundles"]["name"] == volume
    assert f"serving-bundles:{code['environment']['MLOPS_SERVING_BUNDLES_DIR']}:rw" in code["volumes"]


@pytest.mark.system
@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLOPS_EVIDENTLY_SECRET"])
def test_compose_refuses_a_missing_secret_by_name(tmp_path: Path, missing: str) -> None:
    values = {key: value for key, value in SECRETS.items() if key != missing}
    result = _compose_config(_env_file(tmp_path, values))
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_dagster_instance_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.instance.config import dagster_instance_config

    for name, value in {"POSTGRES_HOST": "postgres", "POSTGRES_PORT": "5432", "POSTGRES_USER": "mlops",
                        "POSTGRES_PASSWORD": "secret", "DAGSTER_DB": "dagster"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config, _ = dagster_instance_config(str(REPO_ROOT / "deploy" / "dagster"))
    storage = config["storage"]["custom"]
    assert (storage["module"], storage["class"]) == (
        "mlops_pipeline.postgres_storage",
        "PooledPostgresStorage",
    )
    assert storage["config"]["postgres_db"]["password"] == {"env": "POSTGRES_PASSWORD"}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["telemetry"]["enabled"] is False


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster-docker.yaml", "dagster-k8s.yaml"])
def test_instance_configs_and_their_run_launchers_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    import importlib

    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config

    for variable in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "DAGSTER_DB"):
        monkeypatch.setenv(variable, "5432" if variable == "POSTGRES_PORT" else "value")
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster" / name).read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    launcher = config["run_launcher"]
    module = launcher["module"].replace("dagster.core.", "dagster._core.")  # Dagster's documented alias
    launcher_class = getattr(importlib.import_module(module), launcher["class"])
    result = process_config(launcher_class.config_type(), launcher.get("config") or {})
    assert result.success, [error.message for error in result.errors or []]
    storage = config["storage"].get("custom")  # the stack's own: its configuration as Dagster's
    if storage is not None:
        storage_class = getattr(importlib.import_module(storage["module"]), storage["class"])
        checked = process_config(storage_class.config_type(), storage["config"])
        assert checked.success, [error.message for error in checked.errors or []]
    # queued runs start within a second, as in the embedded instance
    coordinator = config["run_coordinator"]
    coordinator_module = importlib.import_module(
        coordinator["module"].replace("dagster.core.", "dagster._core.")
    )
    queued = process_config(
        getattr(coordinator_module, coordinator["class"]).config_type(), coordinator["config"]
    )
    assert queued.success and queued.value["dequeue_interval_seconds"] == 1, queued.errors
    # one step at a time per pool, and a dead run's slots freed (else its team never trades again)
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] == FREE_SLOTS_AFTER_RUN_END_S
