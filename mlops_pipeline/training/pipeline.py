"""Train one team's model for one ticker: walk-forward evaluation, final fit, DVC, MLflow.

Skips everything when a finished run already holds a registered model for the same data
version and training config.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_pipeline.config.ludwig import LudwigConfigFile
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.training.folds import Fold
from mlops_pipeline.training.ludwig_runner import SEED
from mlops_pipeline.training.plots import predicted_vs_actual_png
from mlops_pipeline.training.retrain_policy import LAST_ROW
from mlops_pipeline.training.tracking import Tracker, TrainingLog, log_training_run
from mlops_pipeline.training.versioning import DATASET_FILE, MODEL_DIR, DvcStore
from mlops_pipeline.training.walk_forward import evaluation_frame, run_walk_forward

HEADLINE_METRICS = ("mae", "rmse", "directional_accuracy", "ic", "mae_skill", "directional_accuracy_skill")


@dataclass
class TrainingOutcome:
    skipped: bool
    run_id: str
    run_url: str
    model_version: str
    data_version: str
    config_hash: str
    metrics: dict[str, float]
    dataset_md5: str = ""
    model_md5: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    pushed_files: int = 0


def training_config_hash(team: TeamConfig, ludwig: LudwigConfigFile) -> str:
    """What decides the trained model besides the data: the Ludwig config, the team's model and
    evaluation settings and the seed (not e.g. its risk limits)."""
    payload = {
        "ludwig": ludwig.config,
        "model": team.model.model_dump(mode="json"),
        "evaluation": team.evaluation.model_dump(mode="json"),
        "seed": SEED,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def train_ticker(
    team: TeamConfig,
    ticker: str,
    dataset: pd.DataFrame,
    data_version: str,
    features: pd.DataFrame,
    ludwig: LudwigConfigFile,
    tracker: Tracker,
    dvc: DvcStore,
    run_tags: dict[str, str] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> TrainingOutcome:
    config_hash = training_config_hash(team, ludwig)
    existing = tracker.find_trained_run(team.name, ticker, data_version, config_hash)
    if existing is not None:
        return TrainingOutcome(
            skipped=True,
            run_id=existing.info.run_id,
            run_url=tracker.run_url(existing.info.experiment_id, existing.info.run_id),
            model_version=existing.data.tags["model_version"],
            data_version=data_version,
            config_hash=config_hash,
            metrics={name: existing.data.metrics.get(name, float("nan")) for name in HEADLINE_METRICS},
            dataset_md5=existing.data.tags.get("dvc.dataset_md5", ""),
            model_md5=existing.data.tags.get("dvc.model_md5", ""),
        )
    started = time.perf_counter()
    frame = evaluation_frame(dataset, features)
    with tempfile.TemporaryDirectory(prefix="training-") as scratch:
        work = Path(scratch)
        result = run_walk_forward(frame, ludwig, team.evaluation, ticker, work / MODEL_DIR, progress)
        dataset_file = work / DATASET_FILE
        frame.to_parquet(dataset_file, index=False)
        versioned = dvc.version(team.name, ticker, dataset_file, work / MODEL_DIR)
        plot = predicted_vs_actual_png(
            result.predictions, f"{team.name} {ticker}: out-of-sample", work / "predicted_vs_actual.png"
        )
        pointers = versioned.pointers
        log = TrainingLog(
            team=team.name,
            ticker=ticker,
            data_version=data_version,
            config_hash=config_hash,
            params=run_params(team, ludwig, frame, result.folds),
            fold_metrics=result.fold_metrics,
            mean_metrics=result.mean,
            ludwig_config=ludwig.config,
            training_statistics=result.training_statistics,
            predictions=result.predictions,
            plot_path=plot,
            dvc_pointers={f"{DATASET_FILE}.dvc": pointers.dataset, f"{MODEL_DIR}.dvc": pointers.model},
            dataset=frame,
            dataset_source=f"{dvc.remote_url}#md5={pointers.dataset_md5}",
            target=ludwig.output,
            extra_tags={
                **(run_tags or {}),
                "dvc.dataset_md5": pointers.dataset_md5,
                "dvc.model_md5": pointers.model_md5,
            },
        )
        logging_started = time.perf_counter()
        record = log_training_run(tracker, log, result.final_model)
        mlflow_seconds = time.perf_counter() - logging_started
    total = time.perf_counter() - started
    return TrainingOutcome(
        skipped=False,
        run_id=record.run_id,
        run_url=record.run_url,
        model_version=record.model_version,
        data_version=data_version,
        config_hash=config_hash,
        metrics={name: result.mean[name] for name in HEADLINE_METRICS},
        dataset_md5=pointers.dataset_md5,
        model_md5=pointers.model_md5,
        timings={
            "ludwig_s": result.ludwig_seconds,
            "dvc_s": versioned.seconds,
            "mlflow_s": mlflow_seconds,
            "overhead_s": total - result.ludwig_seconds,
            "total_s": total,
        },
        pushed_files=versioned.pushed_files,
    )


def run_params(
    team: TeamConfig, ludwig: LudwigConfigFile, frame: pd.DataFrame, folds: list[Fold]
) -> dict[str, str]:
    """Run params: the data window, the resolved team config, the Ludwig config and the folds."""
    dates = frame["date"]
    params: dict[str, Any] = {
        "data.first_date": dates.iloc[0].strftime("%Y-%m-%d"),
        LAST_ROW: dates.iloc[-1].strftime("%Y-%m-%d"),
        "data.rows": len(frame),
        "ludwig_config": ludwig.path.name,
        "seed": SEED,
        "team_config_hash": team.config_hash,
        "evaluation.purge_effective": folds[0].purge,
    }
    params.update(flatten(team.model_dump(mode="json", exclude={"name", "display_name"}), "team"))
    params.update(flatten(ludwig.config, "ludwig"))
    for fold in folds:
        params[f"fold.{fold.index}.train_rows"] = fold.train_stop
        params[f"fold.{fold.index}.test_first"] = dates.iloc[fold.test_start].strftime("%Y-%m-%d")
        params[f"fold.{fold.index}.test_last"] = dates.iloc[fold.test_stop - 1].strftime("%Y-%m-%d")
    return {key: str(value)[:6000] for key, value in params.items()}


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested mappings and lists as dotted keys: ``{"a": [{"b": 1}]}`` -> ``{"p.a.0.b": 1}``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}"))
        return out
    return {prefix: value}
