"""The champion model in the MLflow registry: its training window, its own evaluation error, and
where monitoring numbers are logged (its run, as metrics with the trading date as step).

Registered model ``<team>-<TICKER>``, alias ``champion``; the run holds params ``data.first_date``
and ``data.last_date`` and, when training logged it, ``evaluation/oos_predictions.parquet``.
mlflow is imported inside the methods only.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from mlops_pipeline.model_registry import (
    CHAMPION,
    OOS_ARTIFACT,
    MlflowRegistry,
    TrackingError,
    registered_model_name,
)
from mlops_pipeline.monitoring.performance import evaluation_error
from mlops_pipeline.monitoring.results import Champion, ModelKind

FIRST_DATE_PARAM = "data.first_date"
LAST_DATE_PARAM = "data.last_date"
METRIC_PREFIX = "monitoring."


class ChampionError(RuntimeError):
    """The champion's run lacks what monitoring needs; the message names the model and the field."""


def date_step(day: date) -> int:
    """A trading date as an MLflow step: 2024-07-05 -> 20240705 (sortable, readable)."""
    return day.year * 10000 + day.month * 100 + day.day


class ChampionRegistry:
    """Read-only access to champions, plus metric logging onto the champion's run."""

    def __init__(self, tracking_uri: str) -> None:
        self._registry = MlflowRegistry(tracking_uri)

    def find(self, team: str, ticker: str, kind: ModelKind) -> Champion | None:
        """The champion of ``<team>-<ticker>``, or ``None`` when the model or the alias does not exist."""
        name = registered_model_name(team, ticker)
        version = self._registry.alias_version(name, CHAMPION)
        if version is None:
            return None
        if not version.run_id:
            raise ChampionError(
                f"model {name} version {version.version}: no run_id (cannot find its data window)"
            )
        params = self._registry.get_run(version.run_id).data.params
        window = []
        for param in (FIRST_DATE_PARAM, LAST_DATE_PARAM):
            raw = params.get(param)
            try:
                window.append(date.fromisoformat(str(raw)).isoformat())
            except ValueError as exc:
                raise ChampionError(
                    f"model {name} version {version.version}, run {version.run_id}: "
                    f"param {param}={raw!r} is not a YYYY-MM-DD date"
                ) from exc
        return Champion(
            model_name=name,
            version=str(version.version),
            run_id=version.run_id,
            first_date=window[0],
            last_date=window[1],
            evaluation_error=self._evaluation_error(version.run_id, kind),
        )

    def _evaluation_error(self, run_id: str, kind: ModelKind) -> float | None:
        if OOS_ARTIFACT not in self._registry.artifact_paths(run_id, str(Path(OOS_ARTIFACT).parent)):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self._registry.download(run_id, OOS_ARTIFACT, Path(tmp))
            except TrackingError:
                return None
            return evaluation_error(pd.read_parquet(local), kind)

    def log_metrics(self, run_id: str, day: date, metrics: dict[str, float]) -> list[str]:
        """Log ``metrics`` (prefixed ``monitoring.``) at step ``date_step(day)``; return the keys logged.

        A metric already recorded with the same value at that step is not logged again, so re-running
        a date does not duplicate points.
        """
        from mlflow.entities import Metric

        step = date_step(day)
        timestamp = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        batch = []
        for name, value in sorted(metrics.items()):
            key = f"{METRIC_PREFIX}{name}"
            history = self._registry.call(
                f"metric history {key}", lambda key=key: self._registry.client.get_metric_history(run_id, key)
            )
            if any(point.step == step and point.value == value for point in history):
                continue
            batch.append(Metric(key=key, value=float(value), timestamp=timestamp, step=step))
        if batch:
            self._registry.call("log metrics", lambda: self._registry.client.log_batch(run_id, metrics=batch))
        return [metric.key for metric in batch]
