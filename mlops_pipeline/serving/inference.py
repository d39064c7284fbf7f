"""Run an inference bundle: TorchScript preprocessing, model and postprocessing, without ludwig.

Outputs are named and shaped like ``LudwigModel.predict``: ``<feature>_predictions`` and, for
binary and category outputs, ``<feature>_probabilities`` (one list per row),
``<feature>_probabilities_<class>`` and ``<feature>_probability`` (the predicted class's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlops_pipeline.serving.bundle import MODULE_FILES, read_manifest
from mlops_pipeline.serving.schema import Columns, ModelSchema

# A prediction frame in columns: output column name -> one value per row.
Predictions = dict[str, list[Any]]


class InferenceModel:
    """One loaded bundle. ``predict`` takes validated columns (see ``schema.validate_columns``)."""

    def __init__(self, bundle_dir: Path) -> None:
        import torch

        manifest = read_manifest(bundle_dir)
        self.schema = ModelSchema.from_dict(manifest["schema"])
        self._torch = torch
        self._modules = {
            role: torch.jit.load(str(bundle_dir / filename), map_location="cpu")
            for role, filename in MODULE_FILES.items()
        }
        for module in self._modules.values():
            module.eval()
        # Ludwig's preprocessor holds one module per input feature, keyed "<name>__ludwig".
        self._feature_preprocessors = {
            key.removesuffix("__ludwig"): module
            for key, module in self._modules["preprocessor"].preproc_modules.named_children()
        }

    def predict(self, columns: Columns) -> Predictions:
        torch = self._torch
        with torch.inference_mode():
            preprocessed = self.preprocess(columns)
            raw = self._modules["predictor"](preprocessed)
            outputs = self._modules["postprocessor"](raw)
        return self._ludwig_columns(outputs)

    def preprocess(self, columns: Columns) -> dict[str, Any]:
        """Ludwig's preprocessing of each input feature, by its own TorchScript module, except for
        series already parsed into full-length rows: without NaN or padding (validation ensures
        both), that module would only turn them into this very float32 matrix, row by row."""
        torch = self._torch
        preprocessed: dict[str, Any] = {}
        for spec in self.schema.inputs:
            values = columns[spec.name]
            if isinstance(values, np.ndarray) and values.ndim == 2:
                preprocessed[spec.name] = torch.from_numpy(values.astype(np.float32))
                continue
            if isinstance(values, np.ndarray):
                values = torch.from_numpy(values.astype(np.float32))
            preprocessed[spec.name] = self._feature_preprocessors[spec.name](values)
        return preprocessed

    def _ludwig_columns(self, outputs: dict[str, Any]) -> Predictions:
        frame: Predictions = {}
        for spec in self.schema.outputs:
            probabilities = outputs.get(f"{spec.name}::probabilities")
            if probabilities is not None:
                matrix = probabilities.double().numpy()
                frame[f"{spec.name}_probabilities"] = matrix.tolist()
            frame[f"{spec.name}_predictions"] = _as_list(outputs[f"{spec.name}::predictions"])
            if probabilities is not None:
                for index, class_name in enumerate(spec.class_names):
                    frame[f"{spec.name}_probabilities_{class_name}"] = matrix[:, index].tolist()
                frame[f"{spec.name}_probability"] = matrix.max(axis=1).tolist()
        return frame


def _as_list(values: Any) -> list[Any]:
    if hasattr(values, "numpy"):
        array = values.numpy()
        return array.astype(np.float64).tolist() if array.dtype.kind == "f" else array.tolist()
    return list(values)
