"""MLflow registry access shared by training, promotion, serving, monitoring and competition.

A team's model for a ticker is the registered model ``<team>-<TICKER>``; the ``challenger`` alias
marks the newest trained version and ``champion`` the promoted one. :class:`MlflowRegistry` finds
runs by tag, resolves aliases and versions, reads runs and artifacts; every call is bounded by the
registry's :class:`HttpLimits` and a failure becomes one :class:`TrackingError` naming the server.

MLflow reads its HTTP retry and timeout settings from ``MLFLOW_HTTP_REQUEST_*`` only, so a
registry applies its own limits around each of its calls (under a process lock, restoring what
was there before) instead of leaving them in the process environment for whoever loads first.
mlflow is imported inside the methods only.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

CHALLENGER = "challenger"
CHAMPION = "champion"
# Training logs each run's walk-forward out-of-sample predictions here; backtests and monitoring read them.
OOS_ARTIFACT = "evaluation/oos_predictions.parquet"
MODEL_ARTIFACT = "model"  # the run artifact a registered version is made from
T = TypeVar("T")


def registered_model_name(team: str, ticker: str) -> str:
    return f"{team}-{ticker}"


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused a call; the registry was left as it was."""


@dataclass(frozen=True)
class HttpLimits:
    """Bounded waiting on a tracking server (MLflow's own defaults retry for minutes)."""

    max_retries: int = 3
    backoff_factor: int = 1  # seconds; MLflow reads whole numbers only
    timeout_s: int = 30

    def environment(self) -> dict[str, str]:
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.backoff_factor),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_s),
        }


DEFAULT_LIMITS = HttpLimits()
_LIMITS_LOCK = threading.RLock()


@contextmanager
def _limits_applied(limits: HttpLimits) -> Iterator[None]:
    """``limits`` in force for the calls inside, the previous values restored after."""
    with _LIMITS_LOCK:
        previous = {name: os.environ.get(name) for name in limits.environment()}
        os.environ.update(limits.environment())
        try:
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _missing(exc: Exception) -> bool:
    """A missing model is RESOURCE_DOES_NOT_EXIST; a model without the alias, INVALID_PARAMETER_VALUE."""
    return getattr(exc, "error_code", None) in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def _store_made(database: Path) -> bool:
    """Whether MLflow has begun making its tables in the SQLite file ``database`` (its schema stamp
    is there). The process making them holds the lock exclusively until it is done."""
    try:
        with closing(sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT 1 FROM alembic_version").fetchone() is not None
    except sqlite3.Error:
        return False


class MlflowRegistry:
    """MLflow access for one tracking URI (SQLite in embedded mode, or a tracking server); ``None``
    is MLflow's default (``MLFLOW_TRACKING_URI``)."""

    def __init__(self, tracking_uri: str | None, limits: HttpLimits = DEFAULT_LIMITS) -> None:
        self.tracking_uri = tracking_uri
        self.limits = limits
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            if self.tracking_uri and self.tracking_uri.startswith("sqlite:///"):
                # The embedded store is made on first use, not when the code location loads, by one
                # process at a time: runs starting together would each create its tables. Once it
                # is made, processes only read it to open it, side by side (a shared lock, which
                # still waits for a process that is making it).
                database = Path(self.tracking_uri.removeprefix("sqlite:///"))
                database.parent.mkdir(parents=True, exist_ok=True)
                with (database.parent / f".{database.name}.lock").open("a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_SH if _store_made(database) else fcntl.LOCK_EX)
                    client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                    client.search_registered_models(max_results=1)  # the registry's store too
            else:
                client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            self._client = client
        return self._client

    def call(self, what: str, action: Callable[[], T]) -> T:
        """Run an MLflow call within the limits; any failure becomes a :class:`TrackingError`."""
        from mlflow.exceptions import MlflowException
        from requests.exceptions import RequestException

        try:
            with _limits_applied(self.limits):
                return action()
        except (MlflowException, RequestException, OSError) as exc:
            raise TrackingError(f"MLflow at {self.where()}: {what} failed: {exc}") from exc

    def where(self) -> str:
        if self.tracking_uri is None:
            return "the default tracking URI"
        return re.sub(r"//[^/@]*@", "//", self.tracking_uri)  # never show user:password@

    # -- runs ------------------------------------------------------------------------------
    def find_runs(self, experiment_id: str, tags: dict[str, str], max_results: int | None = None) -> list:
        """Finished runs carrying every tag in ``tags`` and a registered model version, newest first."""
        clauses = [f"tags.{key} = '{value}'" for key, value in tags.items()]
        query = " and ".join([*clauses, "attributes.status = 'FINISHED'", "tags.model_version != ''"])
        limit = {} if max_results is None else {"max_results": max_results}
        return self.call(
            "search runs",
            lambda: self.client.search_runs(
                [experiment_id], query, order_by=["attributes.start_time DESC"], **limit
            ),
        )

    def get_run(self, run_id: str):
        return self.call(f"get run {run_id}", lambda: self.client.get_run(run_id))

    def artifact_paths(self, run_id: str, folder: str) -> set[str]:
        return self.call(
            f"list {folder} of run {run_id}",
            lambda: {item.path for item in self.client.list_artifacts(run_id, folder)},
        )

    def download(self, run_id: str, artifact_path: str, destination: Path) -> Path:
        from mlflow.artifacts import download_artifacts

        local = self.call(
            f"download {artifact_path} of run {run_id}",
            lambda: download_artifacts(
                run_id=run_id,
                artifact_path=artifact_path,
                dst_path=str(destination),
                tracking_uri=self.tracking_uri,
            ),
        )
        return Path(local)

    # -- registered models -------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, str]:
        """Every alias of ``name`` and the version it points to; empty when the model does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            with _limits_applied(self.limits):
                model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise TrackingError(f"MLflow at {self.where()}: get {name} failed: {exc}") from exc
        return {alias: str(version) for alias, version in model.aliases.items()}

    def alias_version(self, name: str, alias: str):
        """The model version ``name@alias`` points to, or ``None`` when the model or alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            with _limits_applied(self.limits):
                return self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if _missing(exc):
                return None
            raise TrackingError(f"MLflow at {self.where()}: get {name}@{alias} failed: {exc}") from exc

    def version(self, name: str, version: str):
        return self.call(f"get {name} v{version}", lambda: self.client.get_model_version(name, version))
