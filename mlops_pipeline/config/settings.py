"""Infrastructure settings: one pydantic-settings object read from env vars and an untracked ``.env``.

Every variable is prefixed ``MLOPS_`` except the standard ones that other tools read too
(``DAGSTER_HOME``, ``MLFLOW_TRACKING_URI``, ``AWS_*``, ``ALPHAVANTAGE_API_KEY``). Secrets are
``SecretStr`` and only ever come from the environment; ``redacted()`` is safe to print and to
attach to runs.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from dotenv import load_dotenv
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_pipeline.monitoring.defaults import DEFAULT_EVIDENTLY_PORT
from mlops_pipeline.sandbox.defaults import DEFAULT_PORT

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def default_project_dir() -> Path:
    """The checkout that holds ``teams/``: ``MLOPS_PROJECT_DIR``, else the package's parent, else CWD."""
    explicit = os.environ.get("MLOPS_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    if (PACKAGE_DIR.parent / "teams").is_dir():
        return PACKAGE_DIR.parent
    return Path.cwd().resolve()


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class PlatformSettings(BaseSettings):
    """Where everything lives and which services are used. Defaults are the embedded, offline mode."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_",
        env_ignore_empty=True,  # an empty variable (`KEY=` in .env, `${KEY:-}` in compose) keeps the default
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    project_dir: Path = Field(default_factory=default_project_dir)
    home: Path | None = Field(default=None, description="Embedded state root (default <project>/.mlops)")
    teams_dir: Path | None = Field(default=None, description="Team overlay folder (default <project>/teams)")
    ludwig_configs_dir: Path | None = Field(
        default=None, description="Ludwig configs (default <project>/ludwig_configs)"
    )
    team_sources: dict[str, str] = Field(
        default_factory=dict,
        description='Team overlays read from git refs, JSON: {"red": "git:team/red:teams/red.yaml"}',
    )
    dagster_home: Path | None = Field(
        default=None,
        validation_alias=_alias("MLOPS_DAGSTER_HOME", "DAGSTER_HOME"),
        description="Dagster instance folder (default <home>/dagster)",
    )

    storage: Literal["local", "s3"] = Field(default="local", description="Object store backend")
    storage_root: Path | None = Field(
        default=None, description="Local object store folder (default <home>/objects)"
    )
    s3_bucket: str = Field(default="mlops", min_length=3, description="Object store bucket (storage=s3)")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint, e.g. http://minio:9000")
    s3_region: str = Field(default="us-east-1")
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint as browsers reach it, for presigned links (default MLOPS_S3_ENDPOINT_URL)",
    )
    s3_link_expiry_hours: int = Field(
        default=168, ge=1, le=168, description="Lifetime of presigned links in Dagster metadata (max 7 days)"
    )
    s3_versioning: bool = Field(default=True, description="`mlops storage init` enables bucket versioning")
    s3_noncurrent_version_days: int = Field(
        default=30, ge=1, description="`mlops storage init`: noncurrent object versions expire after this"
    )
    aws_access_key_id: SecretStr | None = Field(default=None, validation_alias=_alias("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=_alias("AWS_SECRET_ACCESS_KEY")
    )

    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=_alias("MLOPS_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI (default sqlite:///<home>/mlflow/mlflow.db)",
    )
    mlflow_artifact_root: str | None = Field(
        default=None, description="Artifact root for new experiments (default <home>/mlflow/artifacts)"
    )
    mlflow_artifacts_destination: str | None = Field(
        default=None,
        description="Where the MLflow tracking server you run stores artifacts, e.g. s3://mlflow/artifacts "
        "(`mlops storage init` creates its bucket)",
    )
    dvc_remote_url: str | None = Field(
        default=None, description="DVC remote (default <home>/dvc-remote; or s3://...)"
    )
    dvc_remote_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for an s3:// DVC remote"
    )

    market_data: Literal["sandbox", "alphavantage"] = Field(default="sandbox")
    alphavantage_api_key: SecretStr | None = Field(
        default=None, validation_alias=_alias("ALPHAVANTAGE_API_KEY")
    )
    alphavantage_premium: bool = Field(
        default=False, description="Key is premium: full history, adjusted series"
    )
    alphavantage_base_url: str = Field(default="https://www.alphavantage.co")
    alphavantage_daily_budget: int = Field(default=25, ge=0, description="Requests per day; 0 = unlimited")
    alphavantage_min_interval_s: float = Field(
        default=1.1, ge=0, description="Minimum seconds between requests (free keys: 1 per second)"
    )

    broker: Literal["sandbox", "alpaca"] = Field(default="sandbox")
    alpaca_live: bool = Field(
        default=False, description="Trade Alpaca LIVE accounts (real money); only with broker=alpaca"
    )
    alpaca_url: str | None = Field(
        default=None,
        description="Alpaca-compatible trading and market-data endpoint (paper only), e.g. a sandbox",
    )
    broker_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds the broker has to answer a request; a request without an answer by then is "
        "retried like a 5xx (with MLOPS_BROKER=alpaca and the sandbox alike)",
    )

    sandbox_url: str | None = Field(
        default=None, description="A running sandbox server; unset = start one on 127.0.0.1:<sandbox_port>"
    )
    sandbox_port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    sandbox_today: date | None = Field(
        default=None, description="The sandbox market's 'today' (default: real date)"
    )
    sandbox_seed: int = Field(default=7)
    sandbox_recorded: Path | None = Field(
        default=None,
        description="Folder of <SYMBOL>.csv recordings the embedded sandbox serves for those symbols",
    )
    sandbox_recorded_only: bool = Field(
        default=False, description="The embedded sandbox lists only the recorded symbols"
    )
    automation_interval_s: int = Field(
        default=30,
        ge=5,
        description="Seconds between two evaluations of the session_automation sensor, which launches "
        "each stage once its inputs are in (rounded down to a multiple of 5: the daemon checks sensors "
        "every 5 s)",
    )
    sessions_start: date = Field(
        default=date(2020, 1, 2),
        description="First NYSE session that is a partition (the competition's history start)",
    )

    serving_launcher: Literal["auto", "docker", "process"] = Field(default="auto")
    ludwig_backend: Literal["local", "ray"] = Field(
        default="local", description="Ludwig training backend; 'ray' needs Ray and a cluster (RAY_ADDRESS)"
    )
    serving_base_image: str = Field(
        default="python:3.11-slim", description="Base image of the model server image"
    )
    serving_bundles_dir: Path | None = Field(
        default=None, description="Where deployments stage model bundles (default <home>/serving/bundles)"
    )
    serving_network: str | None = Field(
        default=None,
        description="Docker network for serving containers, reached by container name (unset: host network)",
    )
    serving_bundles_volume: str | None = Field(
        default=None,
        description="Named Docker volume holding serving_bundles_dir, mounted read-only at the same path "
        "(when the platform itself runs in a container; unset: bind mounts)",
    )

    evidently_workspace: Path | None = Field(
        default=None, description="Local evidently workspace (default <home>/evidently)"
    )
    evidently_url: str | None = Field(
        default=None,
        description="A running `evidently ui` to write monitoring snapshots to; unset = the local workspace",
    )
    evidently_ui_url: str | None = Field(
        default=None,
        description="Where browsers open the evidently UI (default MLOPS_EVIDENTLY_URL, else "
        "http://127.0.0.1:8000)",
    )
    evidently_secret: SecretStr | None = Field(
        default=None, description="The evidently UI's write secret (`evidently ui --secret`)"
    )

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> PlatformSettings:
        project = self.project_dir.resolve()
        self.project_dir = project
        self.home = (self.home or project / ".mlops").resolve()
        self.teams_dir = (self.teams_dir or project / "teams").resolve()
        self.ludwig_configs_dir = (self.ludwig_configs_dir or project / "ludwig_configs").resolve()
        self.dagster_home = (self.dagster_home or self.home / "dagster").resolve()
        self.storage_root = (self.storage_root or self.home / "objects").resolve()
        self.serving_bundles_dir = (self.serving_bundles_dir or self.home / "serving" / "bundles").resolve()
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"
        if self.mlflow_artifact_root is None:
            self.mlflow_artifact_root = str(self.home / "mlflow" / "artifacts")
        if self.dvc_remote_url is None:
            self.dvc_remote_url = str(self.home / "dvc-remote")
        self.evidently_workspace = (self.evidently_workspace or self.home / "evidently").resolve()
        if self.evidently_ui_url is None:
            self.evidently_ui_url = self.evidently_url or f"http://127.0.0.1:{DEFAULT_EVIDENTLY_PORT}"
        if self.market_data == "alphavantage" and self.alphavantage_api_key is None:
            raise ValueError(
                "MLOPS_MARKET_DATA=alphavantage needs ALPHAVANTAGE_API_KEY in the environment or .env"
            )
        if self.sandbox_recorded is not None:
            self.sandbox_recorded = self.sandbox_recorded.resolve()
            if not self.sandbox_recorded.is_dir():
                raise ValueError(f"MLOPS_SANDBOX_RECORDED={self.sandbox_recorded} is not a directory")
        elif self.sandbox_recorded_only:
            raise ValueError("MLOPS_SANDBOX_RECORDED_ONLY=true needs MLOPS_SANDBOX_RECORDED (a folder)")
        if self.alpaca_url and self.alpaca_live:
            raise ValueError(
                "MLOPS_ALPACA_URL points the broker at another endpoint, which is for paper accounts "
                "only: unset it or MLOPS_ALPACA_LIVE"
            )
        return self

    # Paths are always set after validation; these accessors give them non-optional types.
    @property
    def home_dir(self) -> Path:
        assert self.home is not None
        return self.home

    @property
    def teams_path(self) -> Path:
        assert self.teams_dir is not None
        return self.teams_dir

    @property
    def ludwig_configs_path(self) -> Path:
        assert self.ludwig_configs_dir is not None
        return self.ludwig_configs_dir

    @property
    def dagster_home_path(self) -> Path:
        assert self.dagster_home is not None
        return self.dagster_home

    @property
    def evidently_workspace_path(self) -> Path:
        assert self.evidently_workspace is not None
        return self.evidently_workspace

    @property
    def serving_bundles_path(self) -> Path:
        assert self.serving_bundles_dir is not None
        return self.serving_bundles_dir

    @property
    def storage_root_path(self) -> Path:
        assert self.storage_root is not None
        return self.storage_root

    def redacted(self) -> dict[str, Any]:
        """Every setting as JSON-friendly values, secrets replaced by ``'***' (set)`` or ``None``."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "*** (set)"
            elif isinstance(value, Path | date):
                out[name] = str(value)
            else:
                out[name] = value
        return out


def load_settings(**overrides: Any) -> PlatformSettings:
    """Read settings from the environment and ``<project>/.env`` (the environment wins).

    Variables from ``.env`` are exported into the process environment (without overriding), so that
    secrets referenced by name (``dg.EnvVar``) and child processes see them too.
    """
    project_dir = Path(overrides.get("project_dir") or default_project_dir())
    env_file = project_dir / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)
    return PlatformSettings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> PlatformSettings:
    """Process-wide settings, read once. Tests build their own with :func:`load_settings`."""
    return load_settings()
