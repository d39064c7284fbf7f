"""Training and predicting with Ludwig (imported lazily: loading it costs seconds and a torch shim).

Every training here is chronological: the last ``VALIDATION_FRACTION`` of the training rows is
the validation split used for early stopping (never a random split), and the seed is fixed so that
the same rows and config give the same model.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_pipeline.config.settings import get_settings
from mlops_pipeline.ludwig_api import import_ludwig_api as setup_ludwig_api
from mlops_pipeline.training.dataset import frame_fingerprint

if TYPE_CHECKING:
    from ludwig.api import LudwigModel

SEED = 42
VALIDATION_FRACTION = 0.15
SPLIT_COLUMN = "split"
TRAINING_SET_METADATA = "training_set_metadata.json"


@functools.cache
def import_ludwig_api():
    """``ludwig.api`` set up once per process (:mod:`mlops_pipeline.ludwig_api`), with training's
    log levels and filters."""
    ludwig_api = setup_ludwig_api()
    logging.getLogger("ludwig").setLevel(logging.WARNING)
    # Predicting never splits, so the chronological split column is rightly absent then.
    logging.getLogger("ludwig.data.preprocessing").addFilter(_NoSplitColumnNotice())
    warnings.filterwarnings("ignore", message=f"column: '{SPLIT_COLUMN}' is required", category=UserWarning)
    return ludwig_api


class _NoSplitColumnNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(f"Specified split column {SPLIT_COLUMN} ")


def with_chronological_split(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus a ``split`` column: 0 (train) then 1 (validation) for the newest rows."""
    validation_rows = max(1, round(len(frame) * VALIDATION_FRACTION))
    split = np.zeros(len(frame), dtype="int64")
    split[len(frame) - validation_rows :] = 1
    return frame.assign(**{SPLIT_COLUMN: split})


def training_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as trained: a fixed split on the ``split`` column (chronological validation)."""
    trained = copy.deepcopy(config)
    trained.setdefault("preprocessing", {})["split"] = {"type": "fixed", "column": SPLIT_COLUMN}
    return trained


class LudwigBackendError(RuntimeError):
    """The configured Ludwig backend cannot be used here."""


def training_backend() -> str:
    """``MLOPS_LUDWIG_BACKEND``: ``local`` (this process) or ``ray`` (a Ray cluster, RAY_ADDRESS)."""
    name = get_settings().ludwig_backend
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise LudwigBackendError(
            "MLOPS_LUDWIG_BACKEND=ray needs Ray, which the default install leaves out: "
            "pip install 'ludwig[distributed]==0.11.0' and set RAY_ADDRESS to your cluster"
        )
    return name


def train_model(config: dict[str, Any], frame: pd.DataFrame, work_dir: Path) -> tuple[LudwigModel, dict]:
    """Train on ``frame`` (oldest first); return the model and Ludwig's training statistics."""
    api = import_ludwig_api()
    import torch

    torch.manual_seed(SEED)
    # Ludwig's preprocessing lock of an in-memory frame lives in its cache folder, by default the
    # working directory, which a container's user may not write (and runs would share). A Ray
    # cluster's workers keep their own default: this folder is on the driver.
    work_dir.mkdir(parents=True, exist_ok=True)
    backend: dict[str, Any] = {"type": training_backend()}
    if backend["type"] == "local":
        backend["cache_dir"] = str(work_dir)
    model = api.LudwigModel(training_config(config), logging_level=logging.WARNING, backend=backend)
    train_stats, _, _ = model.train(
        dataset=with_chronological_split(frame),
        output_directory=str(work_dir),
        skip_save_processed_input=True,
        skip_save_log=True,
        skip_save_progress=True,
        skip_save_training_description=True,
        skip_save_training_statistics=True,
        skip_save_model=True,
        random_seed=SEED,
    )
    return model, _plain(train_stats)


def save_model(model: LudwigModel, frame: pd.DataFrame, model_dir: Path) -> None:
    """Save ``model`` trained on ``frame`` so that the same training gives the same bytes.

    Ludwig records a random checksum of the in-memory training data (a key for preprocessing
    caches, which are not used here); it is replaced by a content hash of ``frame``, so that
    content-addressed storage keeps one copy of a model retrained on unchanged data.
    """
    model.save(str(model_dir))
    metadata_file = model_dir / TRAINING_SET_METADATA
    metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    metadata["checksum"] = frame_fingerprint(frame)
    metadata_file.write_text(json.dumps(metadata, sort_keys=True, indent=2), encoding="utf-8")


def load_model(model_dir: Path) -> LudwigModel:
    api = import_ludwig_api()
    return api.LudwigModel.load(str(model_dir), backend="local", logging_level=logging.WARNING)


def predict(model: LudwigModel, frame: pd.DataFrame, output: str) -> pd.DataFrame:
    """``y_pred`` (the predicted value) and ``prob_up`` (binary outputs only, else NaN) per row."""
    predictions, _ = model.predict(dataset=frame.reset_index(drop=True), return_type=pd.DataFrame)
    predictions = predictions.reset_index(drop=True)
    probability = f"{output}_probabilities_True"
    if probability in predictions.columns:
        prob_up = predictions[probability].astype("float64").to_numpy()
        y_pred = (prob_up >= 0.5).astype("float64")
    else:
        y_pred = predictions[f"{output}_predictions"].astype("float64").to_numpy()
        prob_up = np.full(len(frame), np.nan)
    return pd.DataFrame({"y_pred": y_pred, "prob_up": prob_up})


def _plain(value: Any) -> Any:
    """Training statistics as JSON-able builtins (Ludwig returns dataclasses and numpy values)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
