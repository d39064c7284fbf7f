"""MLflow bookkeeping of training runs, the model registry and its aliases.

One experiment per team, one run per (team, ticker, data version, training config). A model is
registered as ``<team>-<TICKER>``; the ``challenger`` alias marks the newest trained version and
``champion`` the promoted one. Every alias move is recorded as a registered-model tag
``audit.<UTC timestamp>`` (JSON), the audit trail shown by ``mlops model list``.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_pipeline.model_registry import (
    CHALLENGER,
    DEFAULT_LIMITS,
    MODEL_ARTIFACT,
    HttpLimits,
    MlflowRegistry,
    TrackingError,
    registered_model_name,
)
from mlops_pipeline.training.retrain_policy import LAST_ROW

AUDIT_PREFIX = "audit."
LUDWIG_CONFIG_ARTIFACT = "ludwig/config.json"
DVC_ARTIFACT_DIR = "dvc"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    run_url: str
    model_version: str
    metrics: dict[str, float]


class Tracker(MlflowRegistry):
    """The registry plus what training writes: experiments, runs, versions and audited alias moves."""

    tracking_uri: str  # always a concrete URI: experiments and run links are made from it

    def __init__(
        self, tracking_uri: str, artifact_root: str | None = None, limits: HttpLimits = DEFAULT_LIMITS
    ) -> None:
        super().__init__(tracking_uri, limits)
        self.artifact_root = artifact_root

    # -- experiments and runs ------------------------------------------------------------
    def experiment_id(self, team: str) -> str:
        def get_or_create() -> str:
            experiment = self.client.get_experiment_by_name(team)
            if experiment is not None:
                return experiment.experiment_id
            location = None
            if self.artifact_root and not self.tracking_uri.startswith(("http://", "https://")):
                location = f"{self.artifact_root.rstrip('/')}/{team}"
                if "://" not in location:
                    location = Path(location).resolve().as_uri()
            return self.client.create_experiment(team, artifact_location=location)

        return self.call(f"experiment {team!r}", get_or_create)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"runs:/{run_id}"

    def find_trained_run(self, team: str, ticker: str, data_version: str, config_hash: str):
        """The newest finished run with a registered model for exactly this data and config."""
        tags = {"team": team, "ticker": ticker, "data_version": data_version, "config_hash": config_hash}
        runs = self.find_runs(self.experiment_id(team), tags)
        return runs[0] if runs else None

    def latest_trained_run(self, team: str, ticker: str):
        """The newest finished run of ``team``/``ticker`` that registered a model, if any."""
        runs = self.find_runs(self.experiment_id(team), {"team": team, "ticker": ticker}, max_results=1)
        return runs[0] if runs else None

    # -- registry ------------------------------------------------------------------------
    def register(self, name: str, run, tags: dict[str, str]) -> str:
        """A new version of ``name`` from the run's ``model`` artifact, tagged; returns its number."""

        def create() -> str:
            from mlflow.exceptions import MlflowException

            try:
                self.client.get_registered_model(name)
            except MlflowException:
                self.client.create_registered_model(name)
            version = self.client.create_model_version(
                name, source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", run_id=run.info.run_id, tags=tags
            )
            return str(version.version)

        return self.call(f"register {name}", create)

    def delete_version(self, name: str, version: str) -> None:
        self.call(f"delete {name} v{version}", lambda: self.client.delete_model_version(name, version))

    def versions(self, name: str) -> list:
        found = self.call(f"list {name}", lambda: self.client.search_model_versions(f"name = '{name}'"))
        return sorted(found, key=lambda item: int(item.version))

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        def apply() -> None:
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)

        self.call(f"tag {name} v{version}", apply)

    def move_alias(self, name: str, alias: str, version: str, actor: str, reason: str) -> dict[str, Any]:
        """Point ``alias`` at ``version`` and append the move to the audit trail."""
        previous = self.aliases(name).get(alias)
        now = datetime.now(UTC)
        entry = {
            "at": now.isoformat(timespec="microseconds"),
            "alias": alias,
            "from": previous,
            "to": str(version),
            "actor": actor,
            "reason": reason,
        }

        def apply() -> None:
            self.client.set_registered_model_alias(name, alias, str(version))
            self.client.set_registered_model_tag(
                name, f"{AUDIT_PREFIX}{now:%Y%m%dT%H%M%S%fZ}", json.dumps(entry)
            )

        self.call(f"set {name}@{alias}", apply)
        return entry

    def audit_trail(self, name: str) -> list[dict[str, Any]]:
        model = self.call(f"get {name}", lambda: self.client.get_registered_model(name))
        entries = [json.loads(value) for key, value in model.tags.items() if key.startswith(AUDIT_PREFIX)]
        return sorted(entries, key=lambda entry: entry["at"])


@dataclass
class TrainingLog:
    """Everything one training run records."""

    team: str
    ticker: str
    data_version: str
    config_hash: str
    params: dict[str, str]
    fold_metrics: list[dict[str, float]]
    mean_metrics: dict[str, float]
    ludwig_config: dict[str, Any]
    training_statistics: dict[str, Any]
    predictions: pd.DataFrame
    plot_path: Path
    dvc_pointers: dict[str, str]
    dataset: pd.DataFrame
    dataset_source: str
    target: str
    extra_tags: dict[str, str]


def log_training_run(tracker: Tracker, log: TrainingLog, final_model) -> RunRecord:
    """One MLflow run with params, metrics, artifacts, the dataset input and the Ludwig model,
    then a registered version with the ``challenger`` alias. If anything fails, the version is
    removed again and no alias moves."""
    import mlflow
    from ludwig.contribs.mlflow.model import log_model

    experiment_id = tracker.experiment_id(log.team)
    mlflow.set_tracking_uri(tracker.tracking_uri)
    tags = {
        "team": log.team,
        "ticker": log.ticker,
        "data_version": log.data_version,
        "config_hash": log.config_hash,
        **log.extra_tags,
    }

    def record_run() -> str:
        with (
            mlflow.start_run(
                experiment_id=experiment_id, run_name=f"{log.ticker}-{log.data_version}", tags=tags
            ) as run,
            tempfile.TemporaryDirectory() as scratch,
        ):
            mlflow.log_params(log.params)
            for fold, metrics in enumerate(log.fold_metrics):
                mlflow.log_metrics(_finite({f"fold_{k}": v for k, v in metrics.items()}), step=fold)
            mlflow.log_metrics(_finite(log.mean_metrics))
            mlflow.log_dict(log.ludwig_config, LUDWIG_CONFIG_ARTIFACT)
            mlflow.log_dict(log.training_statistics, "ludwig/training_statistics.json")
            oos = Path(scratch) / "oos_predictions.parquet"
            log.predictions.to_parquet(oos, index=False)
            mlflow.log_artifact(str(oos), "evaluation")
            mlflow.log_artifact(str(log.plot_path), "evaluation")
            for file_name, text in log.dvc_pointers.items():
                mlflow.log_text(text, f"{DVC_ARTIFACT_DIR}/{file_name}")
            with warnings.catch_warnings():
                # The DVC URL of the dataset matches two of MLflow's local source types; either is right.
                warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
                dataset = mlflow.data.from_pandas(
                    log.dataset,
                    source=log.dataset_source,
                    name=f"{log.team}-{log.ticker}",
                    targets=log.target,
                )
            mlflow.log_input(dataset, context="training")
            log_model(final_model, artifact_path=MODEL_ARTIFACT)
            return run.info.run_id

    run_id = tracker.call("log training run", record_run)
    run = tracker.get_run(run_id)
    name = registered_model_name(log.team, log.ticker)
    version_tags = {
        **tags,
        LAST_ROW: log.params[LAST_ROW],
        **{f"metric.{k}": repr(v) for k, v in log.mean_metrics.items()},
    }
    version = tracker.register(name, run, version_tags)
    try:
        tracker.call("tag run", lambda: tracker.client.set_tag(run_id, "model_version", version))
        tracker.move_alias(name, CHALLENGER, version, actor="training", reason=f"trained by run {run_id}")
    except TrackingError:
        _best_effort(lambda: tracker.delete_version(name, version))
        raise
    return RunRecord(run_id, tracker.run_url(experiment_id, run_id), version, log.mean_metrics)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items() if not math.isnan(value)}


def _best_effort(action: Callable[[], object], attempts: int = 3) -> None:
    for attempt in range(attempts):
        try:
            action()
            return
        except TrackingError:
            time.sleep(2**attempt)
