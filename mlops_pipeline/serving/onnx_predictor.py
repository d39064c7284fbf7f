"""The number inputs' preprocessing and the model's forward pass as one ONNX graph, run by ONNX Runtime.

Ludwig's TorchScript modules pay their interpreter's cost on every operation. For a pass of four
rows, the timeseries CNN's preprocessing and predictor take about 280 µs, its graph in ONNX Runtime
about 100 µs; the direction classifier's TorchScript preprocessing of its nine numbers alone takes
about 160 µs, its whole graph about 150 µs. The graph
takes every number input as it was validated (float64) and every series as the float32 matrix
Ludwig's preprocessing makes of it. Series given as text are still parsed by Ludwig's TorchScript
preprocessing, and the postprocessing (class names, inverse transforms) stays Ludwig's TorchScript
module.

``export_onnx_predictor`` traces Ludwig's eager modules with a dynamic row count and keeps the
graph only if ONNX Runtime's outputs equal the TorchScript modules' (``ATOL``, ``RTOL``) at several row
counts; otherwise the bundle keeps serving with TorchScript and its manifest says why.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from mlops_pipeline.serving.schema import ModelSchema

ONNX_FILE = "predictor.onnx"
# The exported graph's outputs may differ from the TorchScript modules' by ATOL + RTOL x |value|:
# float32 sums in another order differ in their last digits (logits of 800 by 6e-5).
ATOL = 1e-6
RTOL = 1e-5
CHECK_ROWS = (1, 3, 64)  # row counts the exported graph is checked at (traced with 2)
OPSET = 17
ONNX_RUNTIME = "onnxruntime"
TORCHSCRIPT = "torchscript"
Runtime = Literal["onnxruntime", "torchscript"]


@dataclass(frozen=True)
class PredictorChoice:
    """What a bundle's manifest records under ``predictor``: the runtime and, if not ONNX, why."""

    runtime: Runtime
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "reason": self.reason}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> PredictorChoice:
        """The manifest's choice; TorchScript for bundles exported before the ONNX graph existed.
        Raises ``ValueError`` naming the key for anything else."""
        entry = manifest.get("predictor", {"runtime": TORCHSCRIPT})
        if not isinstance(entry, dict) or entry.get("runtime") not in (ONNX_RUNTIME, TORCHSCRIPT):
            expected = f"{ONNX_RUNTIME!r} or {TORCHSCRIPT!r}"
            raise ValueError(f"predictor: expected runtime {expected}, got {entry!r}")
        return cls(entry["runtime"], entry.get("reason"))


class OnnxPredictor:
    """Runs ``predictor.onnx``: input arrays by feature name in, Ludwig's flattened prediction
    tensors (the postprocessor's input) out."""

    def __init__(self, graph: Path | bytes, threads: int) -> None:
        import onnxruntime
        import torch

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = str(graph) if isinstance(graph, Path) else graph
        self._session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self._session.get_inputs()]
        self._outputs = [node.name for node in self._session.get_outputs()]
        self._from_numpy = torch.from_numpy

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        values = self._session.run(self._outputs, {name: inputs[name] for name in self.input_names})
        return {name: self._from_numpy(value) for name, value in zip(self._outputs, values, strict=True)}


def export_onnx_predictor(
    model: Any,
    training_set_metadata: dict[str, Any],
    schema: ModelSchema,
    torchscript: dict[str, Path],
    dest: Path,
) -> PredictorChoice:
    """Write ``dest`` (``predictor.onnx``) for the eager Ludwig ``model`` (``LudwigModel.model``)
    if it agrees with the ``torchscript`` preprocessor and predictor exported from the same model.
    Never raises for the model's sake: whatever goes wrong leaves TorchScript serving, and says why."""
    try:
        graph = _trace(model, training_set_metadata, schema)
    except Exception as exc:  # an encoder the exporter cannot express
        return PredictorChoice(TORCHSCRIPT, f"ONNX export failed: {type(exc).__name__}: {exc}"[:500])
    try:
        disagreement = _disagreement(graph, training_set_metadata, schema, torchscript)
    except Exception as exc:  # e.g. a shape the trace froze, or an operator ONNX Runtime lacks
        return PredictorChoice(TORCHSCRIPT, f"ONNX check failed: {type(exc).__name__}: {exc}"[:500])
    if disagreement is not None:
        return PredictorChoice(TORCHSCRIPT, disagreement)
    dest.write_bytes(graph)
    return PredictorChoice(ONNX_RUNTIME)


def feature_modules(preprocessor: Any) -> dict[str, Any]:
    """Ludwig's preprocessing module of each input feature, by feature name (the TorchScript
    preprocessor keys them ``<name>__ludwig``)."""
    return {
        key.removesuffix("__ludwig"): module for key, module in preprocessor.preproc_modules.named_children()
    }


def _disagreement(
    graph: bytes, training_set_metadata: dict[str, Any], schema: ModelSchema, torchscript: dict[str, Path]
) -> str | None:
    """How the graph's outputs differ from the TorchScript modules' at ``CHECK_ROWS``, or None."""
    import torch

    preprocessor, predictor = (
        torch.jit.load(str(torchscript[role]), map_location="cpu").eval()
        for role in ("preprocessor", "predictor")
    )
    numbers = feature_modules(preprocessor)
    onnx_predictor = OnnxPredictor(graph, threads=1)
    for rows in CHECK_ROWS:
        inputs = _example_inputs(schema, training_set_metadata, rows, seed=rows)
        with torch.inference_mode():
            preprocessed = {
                spec.name: numbers[spec.name](torch.from_numpy(inputs[spec.name]))
                if spec.type == "number"
                else torch.from_numpy(inputs[spec.name])
                for spec in schema.inputs
            }
            expected = {name: value.numpy() for name, value in predictor(preprocessed).items()}
        got = {name: value.numpy() for name, value in onnx_predictor(inputs).items()}
        if set(got) != set(expected):
            return f"ONNX outputs {sorted(got)} differ from {sorted(expected)}"
        for name, value in expected.items():
            if got[name].dtype != value.dtype or got[name].shape != value.shape:
                return (
                    f"ONNX output {name} is {got[name].dtype} {got[name].shape} at {rows} rows, "
                    f"TorchScript's {value.dtype} {value.shape}"
                )
            if not np.allclose(got[name], value, rtol=RTOL, atol=ATOL, equal_nan=True):
                difference = np.abs(got[name].astype(np.float64) - value.astype(np.float64))
                return (
                    f"ONNX output {name} differs from TorchScript's by {np.nanmax(difference):.2e} at "
                    f"{rows} rows (allowed: {ATOL:g} + {RTOL:g} x |value|)"
                )
    return None


def _trace(model: Any, training_set_metadata: dict[str, Any], schema: ModelSchema) -> bytes:
    """Ludwig's number preprocessing (``_InferencePreprocessor``'s modules) and inference predictor
    (``_InferencePredictor``), eager and with one array argument per input feature, traced into an
    ONNX graph."""
    import torch
    from ludwig.features.feature_registries import get_input_type_registry
    from ludwig.features.feature_utils import get_module_dict_key_from_name, get_name_from_module_dict_key
    from ludwig.utils.misc_utils import get_from_registry
    from ludwig.utils.output_feature_utils import get_feature_concat_name

    names = schema.input_names
    number_feature = get_from_registry("number", get_input_type_registry())
    number_modules = {
        spec.name: number_feature.create_preproc_module(training_set_metadata[spec.name])
        for spec in schema.inputs
        if spec.type == "number"
    }

    class Predictor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.number_modules = torch.nn.ModuleDict(
                {get_module_dict_key_from_name(name): module for name, module in number_modules.items()}
            )
            self.predict_modules = torch.nn.ModuleDict(
                {
                    get_module_dict_key_from_name(name): feature.prediction_module
                    for name, feature in model.output_features.items()
                }
            )

        def forward(self, *arrays: torch.Tensor) -> dict[str, torch.Tensor]:
            inputs = dict(zip(names, arrays, strict=True))
            for key, preprocess in self.number_modules.items():
                name = get_name_from_module_dict_key(key)
                inputs[name] = preprocess(inputs[name])
            outputs = self.model(inputs)
            flattened = {}
            for key, predict in self.predict_modules.items():
                feature = get_name_from_module_dict_key(key)
                for output, values in predict(outputs, feature).items():
                    flattened[get_feature_concat_name(feature, output)] = values
            return flattened

    predictor = Predictor().eval()
    arrays = _example_inputs(schema, training_set_metadata, 2, seed=0)
    example = tuple(torch.from_numpy(array) for array in arrays.values())
    # Tracing Ludwig's code warns about shape checks it freezes; nothing a user can act on, and the
    # comparison with TorchScript at several row counts decides whether the graph is kept.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output_names = list(predictor(*example))
        buffer = io.BytesIO()
        torch.onnx.export(
            predictor,
            example,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=output_names,
            dynamic_axes={name: {0: "rows"} for name in [*names, *output_names]},
        )
    return buffer.getvalue()


def _example_inputs(
    schema: ModelSchema, training_set_metadata: dict[str, Any], rows: int, seed: int
) -> dict[str, np.ndarray]:
    """The graph's inputs: numbers as validated (float64 ``[rows]``, spread like the training
    values) and series as Ludwig's preprocessing makes them (float32 ``[rows, max_length]``)."""
    generator = np.random.default_rng(seed)
    inputs = {}
    for spec in schema.inputs:
        if spec.type == "timeseries" and spec.max_length:
            inputs[spec.name] = generator.standard_normal((rows, spec.max_length), dtype=np.float32)
        elif spec.type == "number":
            centre, spread = _typical(training_set_metadata.get(spec.name, {}))
            inputs[spec.name] = generator.normal(centre, 2 * spread, rows)
        else:
            raise ValueError(f"input {spec.name}: no ONNX input for a {spec.type} without a length")
    return inputs


def _typical(metadata: dict[str, Any]) -> tuple[float, float]:
    """A centre and spread of a number input's training values, from Ludwig's metadata of it."""
    if metadata.get("std"):
        return float(metadata.get("mean", 0.0)), float(metadata["std"])
    if metadata.get("max") is not None and metadata.get("min") is not None:
        low, high = float(metadata["min"]), float(metadata["max"])
        return (low + high) / 2, (high - low) / 4 or 1.0
    return 0.0, 1.0
