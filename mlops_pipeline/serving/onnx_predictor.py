"""The model's forward pass as an ONNX graph, run by ONNX Runtime.

Ludwig's TorchScript predictor pays its interpreter's cost on every operation: a pass of a few rows
of the timeseries CNN takes about 190 µs, ONNX Runtime's run of the same graph about 45 µs. The
bundle's preprocessing (text parsing, normalisation) and postprocessing (class names, inverse
transforms) stay Ludwig's TorchScript modules; only the predictor between them is replaced.

``export_onnx_predictor`` traces the model's eager predictor with a dynamic row count and keeps the
graph only if ONNX Runtime's outputs equal the TorchScript predictor's (``ATOL``) at several row
counts; otherwise the bundle keeps serving with TorchScript and its manifest says why.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from mlops_pipeline.serving.schema import ModelSchema

ONNX_FILE = "predictor.onnx"
ATOL = 1e-6  # the largest difference from the TorchScript predictor an exported graph may show
CHECK_ROWS = (1, 3, 64)  # row counts the exported graph is checked at (traced with 2)
OPSET = 17


@dataclass(frozen=True)
class PredictorChoice:
    """What a bundle's manifest records under ``predictor``: the runtime and, if not ONNX, why."""

    runtime: str  # "onnxruntime" or "torchscript"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "reason": self.reason}


class OnnxPredictor:
    """Runs ``predictor.onnx``: named input tensors in, Ludwig's flattened prediction tensors out."""

    def __init__(self, graph: Path | bytes, threads: int) -> None:
        import onnxruntime
        import torch

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = str(graph) if isinstance(graph, Path) else graph
        self._session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self._inputs = [node.name for node in self._session.get_inputs()]
        self._outputs = [node.name for node in self._session.get_outputs()]
        self._from_numpy = torch.from_numpy

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values = self._session.run(self._outputs, {name: inputs[name].numpy() for name in self._inputs})
        return {name: self._from_numpy(value) for name, value in zip(self._outputs, values, strict=True)}


def export_onnx_predictor(
    model: Any, schema: ModelSchema, torchscript_predictor: Path, dest: Path
) -> PredictorChoice:
    """Write ``dest`` (``predictor.onnx``) for the eager Ludwig ``model`` (``LudwigModel.model``)
    if it agrees with the ``torchscript_predictor`` exported from the same model."""
    import torch

    try:
        graph = _trace(model, schema)
    except Exception as exc:  # an encoder the exporter cannot express: TorchScript serves it
        return PredictorChoice("torchscript", f"ONNX export failed: {type(exc).__name__}: {exc}"[:500])
    reference = torch.jit.load(str(torchscript_predictor), map_location="cpu").eval()
    predictor = OnnxPredictor(graph, threads=1)
    worst = 0.0
    for rows in CHECK_ROWS:
        inputs = _example_inputs(schema, rows, seed=rows)
        with torch.inference_mode():
            expected = reference(inputs)
        got = predictor(inputs)
        if set(got) != set(expected):
            message = f"ONNX outputs {sorted(got)} differ from {sorted(expected)}"
            return PredictorChoice("torchscript", message)
        for name, value in expected.items():
            if got[name].shape != value.shape:
                return PredictorChoice(
                    "torchscript", f"ONNX output {name} has shape {tuple(got[name].shape)} at {rows} rows"
                )
            difference = np.abs(got[name].numpy().astype(np.float64) - value.numpy().astype(np.float64))
            worst = max(worst, float(difference.max(initial=0.0)))
    if worst > ATOL:
        return PredictorChoice("torchscript", f"ONNX outputs differ from TorchScript's by {worst:.2e}")
    dest.write_bytes(graph)
    return PredictorChoice("onnxruntime")


def _trace(model: Any, schema: ModelSchema) -> bytes:
    """Ludwig's inference predictor (``ludwig.models.inference._InferencePredictor``), eager and
    with one tensor argument per input feature, traced into an ONNX graph."""
    import torch
    from ludwig.features.feature_utils import get_module_dict_key_from_name, get_name_from_module_dict_key
    from ludwig.utils.output_feature_utils import get_feature_concat_name

    names = schema.input_names

    class Predictor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.predict_modules = torch.nn.ModuleDict(
                {
                    get_module_dict_key_from_name(name): feature.prediction_module
                    for name, feature in model.output_features.items()
                }
            )

        def forward(self, *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
            outputs = self.model(dict(zip(names, tensors, strict=True)))
            flattened = {}
            for key, predict in self.predict_modules.items():
                feature = get_name_from_module_dict_key(key)
                for output, values in predict(outputs, feature).items():
                    flattened[get_feature_concat_name(feature, output)] = values
            return flattened

    predictor = Predictor().eval()
    example = _example_inputs(schema, 2, seed=0)
    # Tracing Ludwig's code warns about shape checks it freezes; nothing a user can act on, and the
    # comparison with TorchScript at several row counts decides whether the graph is kept.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output_names = list(predictor(*example.values()))
        buffer = io.BytesIO()
        torch.onnx.export(
            predictor,
            tuple(example.values()),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=output_names,
            dynamic_axes={name: {0: "rows"} for name in [*names, *output_names]},
        )
    return buffer.getvalue()


def _example_inputs(schema: ModelSchema, rows: int, seed: int) -> dict[str, torch.Tensor]:
    """Preprocessed inputs as the bundle's preprocessor makes them: float32 numbers ``[rows]`` and
    series ``[rows, max_length]``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for spec in schema.inputs:
        shape = (rows, spec.max_length) if spec.type == "timeseries" else (rows,)
        inputs[spec.name] = torch.randn(shape, generator=generator, dtype=torch.float32)
    return inputs
