"""Run an inference bundle without ludwig: TorchScript preprocessing and postprocessing, and the
forward pass (with the numbers' preprocessing) in ONNX Runtime, or in TorchScript for a bundle
without ``predictor.onnx``.

Outputs are named and shaped like ``LudwigModel.predict``: ``<feature>_predictions`` and, for
binary and category outputs, ``<feature>_probabilities`` (one list per row),
``<feature>_probabilities_<class>`` and ``<feature>_probability`` (the predicted class's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlops_pipeline.serving.bundle import MODULE_FILES, BundleError, read_manifest
from mlops_pipeline.serving.onnx_predictor import (
    ONNX_FILE,
    TORCHSCRIPT,
    OnnxPredictor,
    feature_modules,
)
from mlops_pipeline.serving.schema import Columns, ModelSchema, OutputSpec

ONEDNN_MIN_ROWS = 16  # TorchScript passes of fewer rows run convolutions without oneDNN
_AROUND_THE_GRAPH = ("preprocessor", "postprocessor")  # the TorchScript modules an ONNX bundle runs
# A prediction frame in columns: output column name -> one value per row.
Predictions = dict[str, list[Any]]


class InferenceModel:
    """One loaded bundle. ``predict`` takes validated columns (see ``schema.validate_columns``)."""

    def __init__(self, bundle_dir: Path) -> None:
        import torch

        manifest = read_manifest(bundle_dir)
        self.schema = manifest.schema
        self.predictor_runtime = manifest.predictor.runtime
        self._torch = torch
        roles = MODULE_FILES if self.predictor_runtime == TORCHSCRIPT else _AROUND_THE_GRAPH
        modules = {
            role: torch.jit.load(str(bundle_dir / MODULE_FILES[role]), map_location="cpu").eval()
            for role in roles
        }
        # Each module's forward method, called directly: a request's pass makes a dozen calls, and
        # nn.Module.__call__ adds its hook handling to each.
        self._preprocess_all = modules["preprocessor"].forward
        self._postprocessor = modules["postprocessor"].forward
        self._feature_preprocessors = {
            name: module.forward for name, module in feature_modules(modules["preprocessor"]).items()
        }
        self._graph: OnnxPredictor | None = None
        if self.predictor_runtime == TORCHSCRIPT:  # exported before ONNX, or ONNX could not match it
            self._predictor = modules["predictor"].forward
        else:
            self._graph = _load_graph(bundle_dir / ONNX_FILE, self.schema, torch.get_num_threads())
        self._output_names = [_OutputNames.of(spec) for spec in self.schema.outputs]

    def predict(self, columns: Columns) -> Predictions:
        torch = self._torch
        with torch.inference_mode():
            if self._graph is not None:
                predictions = self._graph(self._graph_inputs(columns))
            else:
                # oneDNN's convolutions pay a setup that outweighs a small batch's whole convolution
                # (the timeseries CNN takes twice as long for 2 to 16 rows with it as without); both
                # compute the same values. A process-wide switch, set before every pass.
                torch.backends.mkldnn.enabled = len(next(iter(columns.values()))) >= ONEDNN_MIN_ROWS
                predictions = self._predictor(self._preprocess(columns))
            outputs = self._postprocessor(predictions)
        return self._ludwig_columns(outputs)

    def _graph_inputs(self, columns: Columns) -> dict[str, np.ndarray]:
        """The ONNX graph's inputs: numbers as validated (the graph preprocesses them), series as
        float32 matrices: parsed ones as they are, text by Ludwig's preprocessing module."""
        inputs: dict[str, np.ndarray] = {}
        for spec in self.schema.inputs:
            values = columns[spec.name]
            matrix = _series_matrix(values)
            if spec.type == "number":
                inputs[spec.name] = np.asarray(values, dtype=np.float64)
            elif matrix is not None:
                inputs[spec.name] = matrix
            else:
                inputs[spec.name] = self._feature_preprocessors[spec.name](values).numpy()
        return inputs

    def _preprocess(self, columns: Columns) -> dict[str, Any]:
        """For the TorchScript predictor: Ludwig's preprocessing of each input feature, by its own
        TorchScript module, except for series already parsed into full-length rows: without NaN or
        padding (validation ensures both), that module would only turn them into this very float32
        matrix, row by row. When every feature needs its module, the preprocessor runs them all in
        one call."""
        torch = self._torch
        parsed: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        for spec in self.schema.inputs:
            values = columns[spec.name]
            matrix = _series_matrix(values)
            if matrix is not None:
                parsed[spec.name] = torch.from_numpy(matrix)
            else:  # numbers as float64: the module casts them to float32 itself
                raw[spec.name] = torch.from_numpy(values) if isinstance(values, np.ndarray) else values
        if not parsed:
            return self._preprocess_all(raw)
        for name, values in raw.items():
            parsed[name] = self._feature_preprocessors[name](values)
        return parsed

    def _ludwig_columns(self, outputs: dict[str, Any]) -> Predictions:
        frame: Predictions = {}
        for names in self._output_names:
            probabilities = outputs.get(names.probabilities_key)
            if probabilities is None:
                frame[names.predictions] = _as_list(outputs[names.predictions_key])
                continue
            matrix = probabilities.double().numpy()
            frame[names.probabilities] = matrix.tolist()
            frame[names.predictions] = _as_list(outputs[names.predictions_key])
            for index, column in enumerate(names.per_class):
                frame[column] = matrix[:, index].tolist()
            frame[names.probability] = matrix.max(axis=1).tolist()
        return frame


@dataclass(frozen=True)
class _OutputNames:
    """One output feature's keys in the postprocessor's outputs and its prediction column names."""

    predictions_key: str
    probabilities_key: str
    predictions: str
    probabilities: str
    per_class: list[str]
    probability: str

    @classmethod
    def of(cls, spec: OutputSpec) -> _OutputNames:
        name = spec.name
        return cls(
            predictions_key=f"{name}::predictions",
            probabilities_key=f"{name}::probabilities",
            predictions=f"{name}_predictions",
            probabilities=f"{name}_probabilities",
            per_class=[f"{name}_probabilities_{class_name}" for class_name in spec.class_names],
            probability=f"{name}_probability",
        )


def _as_list(values: Any) -> list[Any]:
    if hasattr(values, "numpy"):
        array = values.numpy()
        return array.astype(np.float64).tolist() if array.dtype.kind == "f" else array.tolist()
    return list(values)


def _series_matrix(values: Any) -> np.ndarray | None:
    """A series column parsed into full-length rows (see ``schema.validate_columns``), as float32."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        return values.astype(np.float32)
    return None


def _load_graph(path: Path, schema: ModelSchema, threads: int) -> OnnxPredictor:
    try:
        graph = OnnxPredictor(path, threads)
    except Exception as exc:
        raise BundleError(f"unloadable ONNX graph {path}: {exc}") from exc
    unknown = sorted(set(graph.input_names) - schema.input_set)
    if unknown:
        raise BundleError(f"ONNX graph {path} takes inputs {unknown} that the bundle's schema lacks")
    return graph
