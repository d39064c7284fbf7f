"""Reproduce a training run: pull its dataset and models by their DVC pointers and re-score them."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_pipeline.config.ludwig import LudwigConfigFile
from mlops_pipeline.config.teams import EvaluationSpec
from mlops_pipeline.training.tracking import DVC_ARTIFACT_DIR, LUDWIG_CONFIG_ARTIFACT, Tracker
from mlops_pipeline.training.versioning import DATASET_FILE, MODEL_DIR, DvcPointers, DvcStore
from mlops_pipeline.training.walk_forward import rescore


class ReproductionError(RuntimeError):
    """The run cannot be reproduced (missing pointers, unreachable remote, ...)."""


@dataclass(frozen=True)
class Reproduction:
    run_id: str
    dataset_md5: str
    model_md5: str
    logged: dict[str, float]
    recomputed: dict[str, float]

    @property
    def mismatches(self) -> dict[str, tuple[float, float]]:
        return {
            name: (self.logged[name], value)
            for name, value in self.recomputed.items()
            if name in self.logged and not _same(self.logged[name], value)
        }

    @property
    def identical(self) -> bool:
        return not self.mismatches and bool(self.logged)


def reproduce_run(tracker: Tracker, dvc: DvcStore, run_id: str, workdir: Path | None = None) -> Reproduction:
    """Pull exactly the run's dataset and model directory and recompute its mean and fold metrics."""
    run = tracker.get_run(run_id)
    params, tags = run.data.params, run.data.tags
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        root = workdir or Path(scratch)
        artifacts = root / "artifacts"
        pointer_dir = tracker.download(run_id, DVC_ARTIFACT_DIR, artifacts)
        config_file = tracker.download(run_id, LUDWIG_CONFIG_ARTIFACT, artifacts)
        pointers = DvcPointers(
            dataset=(pointer_dir / f"{DATASET_FILE}.dvc").read_text(encoding="utf-8"),
            model=(pointer_dir / f"{MODEL_DIR}.dvc").read_text(encoding="utf-8"),
        )
        dataset_file, model_dir = dvc.pull(pointers, root / "workspace")
        frame = pd.read_parquet(dataset_file)
        ludwig = LudwigConfigFile(
            path=Path(params["ludwig_config"]), config=json.loads(config_file.read_text())
        )
        spec = EvaluationSpec(
            folds=int(params["team.evaluation.folds"]),
            test_days=int(params["team.evaluation.test_days"]),
            purge_days=int(params["team.evaluation.purge_days"]),
        )
        _, per_fold, mean = rescore(frame, ludwig, spec, tags["ticker"], model_dir)
    recomputed = dict(mean)
    history = {}
    for name in per_fold[0]:
        metric_history = tracker.call(
            f"metric history {name}",
            lambda name=name: tracker.client.get_metric_history(run_id, f"fold_{name}"),
        )
        history.update({f"fold_{name}@{point.step}": point.value for point in metric_history})
    for index, metrics in enumerate(per_fold):
        recomputed.update({f"fold_{name}@{index}": value for name, value in metrics.items()})
    logged = {**run.data.metrics, **history}
    return Reproduction(run_id, pointers.dataset_md5, pointers.model_md5, logged, recomputed)


def _same(logged: float, recomputed: float) -> bool:
    if math.isnan(logged) or math.isnan(recomputed):
        return math.isnan(logged) and math.isnan(recomputed)
    return logged == recomputed
