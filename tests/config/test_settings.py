from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops_pipeline.config.home import embedded_dagster_yaml, ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.sandbox.defaults import DEFAULT_PORT


def test_embedded_defaults_live_under_home(isolated_env: Path) -> None:
    settings = load_settings()
    assert settings.home_dir == isolated_env.resolve()
    assert settings.storage == "local"
    assert settings.storage_root_path == isolated_env.resolve() / "objects"
    assert settings.dagster_home_path == isolated_env.resolve() / "dagster"
    assert settings.mlflow_tracking_uri == f"sqlite:///{isolated_env.resolve() / 'mlflow' / 'mlflow.db'}"
    assert settings.dvc_remote_url == str(isolated_env.resolve() / "dvc-remote")
    assert settings.market_data == "sandbox"
    assert settings.broker == "sandbox"


def test_env_overrides_and_standard_aliases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_STORAGE", "s3")
    monkeypatch.setenv("MLOPS_S3_BUCKET", "team-objects")
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("MLOPS_TEAMS_DIR", str(tmp_path / "elsewhere"))
    settings = load_settings()
    assert settings.storage == "s3"
    assert settings.s3_bucket == "team-objects"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.dagster_home_path == (tmp_path / "dh").resolve()
    assert settings.teams_path == (tmp_path / "elsewhere").resolve()


def test_dotenv_file_is_read_and_environment_wins(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".env").write_text("MLOPS_SANDBOX_PORT=9911\nMLOPS_S3_BUCKET=from-dotenv\n", encoding="utf-8")
    monkeypatch.setenv("MLOPS_S3_BUCKET", "from-env")
    settings = load_settings()
    assert settings.sandbox_port == 9911
    assert settings.s3_bucket == "from-env"


def test_empty_values_keep_the_defaults(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As .env.example promises: `KEY=` in .env, or a variable compose sets from an unset one."""
    (project / ".env").write_text("MLOPS_SANDBOX_TODAY=\nMLOPS_SANDBOX_PORT=\n", encoding="utf-8")
    monkeypatch.setenv("MLOPS_STORAGE", "")
    settings = load_settings()
    assert settings.sandbox_today is None
    assert settings.sandbox_port == DEFAULT_PORT
    assert settings.storage == "local"


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "K3YVALUE123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "S3CRETVALUE")
    settings = load_settings()
    dumped = json.dumps(settings.redacted())
    assert "K3YVALUE123" not in dumped and "S3CRETVALUE" not in dumped
    assert settings.redacted()["alphavantage_api_key"] == "*** (set)"
    assert "K3YVALUE123" not in repr(settings)


def test_live_market_data_requires_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_MARKET_DATA", "alphavantage")
    with pytest.raises(ValidationError, match="needs ALPHAVANTAGE_API_KEY"):
        load_settings()


def test_bad_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_STORAGE", "ftp")
    with pytest.raises(ValidationError, match="storage"):
        load_settings()


def test_ensure_home_creates_instance_with_telemetry_off(isolated_env: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    settings = load_settings()
    ensure_home(settings)
    ensure_home(settings)  # idempotent
    text = (settings.dagster_home_path / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in text
    config, _ = dagster_instance_config(str(settings.dagster_home_path))  # Dagster validates it
    # a dead run's pool slots (an account's trading step) are freed after it is marked failed
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] == 30
    assert settings.storage_root_path.is_dir()
    assert Path(settings.dvc_remote_url or "").is_dir()


def test_ensure_home_brings_an_earlier_embedded_config_up_to_date_and_keeps_a_users_own(
    isolated_env: Path,
) -> None:
    settings = load_settings()
    ensure_home(settings)
    path = settings.dagster_home_path / "dagster.yaml"
    current = embedded_dagster_yaml(settings.dagster_home_path)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == current
    moved = embedded_dagster_yaml(isolated_env.parent / "elsewhere" / "dagster")  # a home moved here
    earlier = embedded_dagster_yaml(settings.dagster_home_path)
    del earlier["storage"], earlier["compute_logs"]  # the previous version's file: Dagster's own
    older = embedded_dagster_yaml(settings.dagster_home_path, max_concurrent_runs=4)
    del older["storage"], older["compute_logs"]  # the one before
    oldest = embedded_dagster_yaml(settings.dagster_home_path, max_concurrent_runs=4)
    del oldest["storage"], oldest["compute_logs"], oldest["concurrency"]["pools"]["op_granularity_run_buffer"]
    for previous in (moved, earlier, older, oldest):
        path.write_text(yaml.safe_dump(previous, sort_keys=False), encoding="utf-8")
        ensure_home(settings)
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == current
    own = {**earlier, "concurrency": {"runs": {"max_concurrent_runs": 2}}}
    path.write_text(yaml.safe_dump(own, sort_keys=False), encoding="utf-8")
    ensure_home(settings)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == own


def test_dotenv_values_are_exported_for_child_processes(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RED_ALPACA_API_KEY", "placeholder")
    monkeypatch.delenv("RED_ALPACA_API_KEY")  # removed again when the test ends
    (project / ".env").write_text("RED_ALPACA_API_KEY=from-dotenv\n", encoding="utf-8")
    load_settings()
    assert os.environ["RED_ALPACA_API_KEY"] == "from-dotenv"
