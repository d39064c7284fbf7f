"""The Open Inference Protocol (KServe V2) over REST, JSON tensors only.

One input tensor per model input feature: numbers as FP16/FP32/FP64 (or integers) of shape [N] or
[N, 1]; timeseries as BYTES strings of shape [N] (or [N, 1]), or numbers of shape [N, L]. Outputs are
one tensor per prediction column, named as ``LudwigModel.predict`` names them. Errors are
``{"error": ...}`` with a 4xx status. The binary tensor extension is refused on input and not used on
output (a client asking for binary outputs gets JSON, which the extension allows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, WithJsonSchema

from mlops_pipeline.serving.api_models import COMPONENTS
from mlops_pipeline.serving.errors import field_error
from mlops_pipeline.serving.frames import InputFrame, Predictions, from_columns
from mlops_pipeline.serving.openapi import example_row
from mlops_pipeline.serving.registry import ServedModel
from mlops_pipeline.serving.schema import InputSpec, ModelSchema

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
]  # fmt: skip
FLOATS = frozenset({"FP16", "FP32", "FP64", "BF16"})
INT_RANGES = {
    f"{prefix}INT{bits}": ((0, 2**bits - 1) if prefix else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for prefix in ("", "U")
    for bits in (8, 16, 32, 64)
}
NUMERIC = FLOATS | frozenset(INT_RANGES)
OUTPUT_DATATYPES = {"number": "FP64", "boolean": "BOOL", "string": "BYTES", "any": "BYTES"}
BINARY_HEADER = "inference-header-content-length"
Dimension = Annotated[StrictInt, Field(ge=0)]


class RequestInput(BaseModel):
    name: Annotated[str, WithJsonSchema({"allOf": [{"$ref": COMPONENTS + "InputTensorName"}]})]
    shape: list[Dimension] = Field(min_length=1, max_length=8)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(description="Row-major values, flat or nested as the shape")


class RequestOutput(BaseModel):
    name: Annotated[str, WithJsonSchema({"allOf": [{"$ref": COMPONENTS + "OutputTensorName"}]})]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 for a dimension of any size")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool
    reason: str | None = None


class ModelReady(BaseModel):
    name: str
    ready: bool
    reason: str | None = None


class V2Error(BaseModel):
    error: str
    details: list[dict[str, Any]] = []


def model_metadata(served: ServedModel) -> dict[str, Any]:
    schema = served.model.schema
    inputs = [
        {"name": spec.name, "datatype": "FP32" if spec.type == "number" else "BYTES", "shape": [-1]}
        for spec in schema.inputs
    ]
    outputs = [
        {
            "name": column.name,
            "datatype": OUTPUT_DATATYPES[column.kind],
            "shape": [-1] if column.width is None else [-1, column.width],
        }
        for column in schema.output_columns
    ]
    return {
        "name": served.info.name,
        "versions": [served.info.version] if served.info.version else [],
        "platform": f"ludwig_{served.model.predictor_runtime}",
        "inputs": inputs,
        "outputs": outputs,
    }


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major values of a nested list, without recursion (bodies may nest deeply)."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _fits(datatype: str, value: Any) -> bool:
    if datatype == "BYTES":
        return isinstance(value, str)
    if datatype == "BOOL":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if datatype in FLOATS:
        return True
    low, high = INT_RANGES[datatype]
    return isinstance(value, int) and low <= value <= high


def tensor_values(tensor: RequestInput) -> list[Any]:
    """The tensor's flat values, checked against its shape and datatype."""
    field = f"inputs.{tensor.name}"
    values = _flatten(tensor.data)
    expected = math.prod(tensor.shape)
    if len(values) != expected:
        message = f"{len(values)} values for shape {tensor.shape}, which holds {expected}"
        raise field_error(400, f"{field}.data", message)
    for position, value in enumerate(values):
        if not _fits(tensor.datatype, value):
            shown = repr(value)[:40]
            raise field_error(400, f"{field}.data", f"element {position} ({shown}) is not {tensor.datatype}")
    return values


def feature_column(spec: InputSpec, tensor: RequestInput) -> list[Any]:
    """One feature's column (one value per row) from its tensor."""
    field = f"inputs.{tensor.name}"
    shape, datatype = tensor.shape, tensor.datatype
    column_shape = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)  # [N] or [N, 1]
    if spec.type == "number":
        if datatype not in NUMERIC:
            raise field_error(400, f"{field}.datatype", f"{datatype}: a number feature takes FP32 or FP64")
        if not column_shape:
            raise field_error(400, f"{field}.shape", f"{shape}: a number feature takes [N] or [N, 1]")
        return tensor_values(tensor)
    if datatype == "BYTES":
        if not column_shape:
            raise field_error(400, f"{field}.shape", f"{shape}: BYTES timeseries take [N] or [N, 1]")
        return tensor_values(tensor)
    if datatype not in NUMERIC or len(shape) != 2:
        message = f"{datatype} {shape}: a timeseries takes BYTES [N] (space-separated) or numbers [N, L]"
        raise field_error(400, field, message)
    values, width = tensor_values(tensor), shape[1]
    return [values[row * width : (row + 1) * width] for row in range(shape[0])]


def tensors_frame(inputs: Sequence[RequestInput], schema: ModelSchema) -> InputFrame:
    """The input frame of an inference request: one column per input tensor, by feature name."""
    specs = {spec.name: spec for spec in schema.inputs}
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        if tensor.name in columns:
            raise field_error(400, f"inputs.{tensor.name}", "given twice")
        spec = specs.get(tensor.name)
        if spec is None:
            known = ", ".join(specs)
            raise field_error(400, f"inputs.{tensor.name[:100]}", f"not an input of this model ({known})")
        columns[tensor.name] = feature_column(spec, tensor)
    return from_columns(columns, "inputs")


def output_tensors(predictions: Predictions, requested: Sequence[str] | None) -> list[dict[str, Any]]:
    """One tensor per prediction column (those ``requested``, or all), shaped [N] or [N, width]."""
    tensors = []
    for name, values in predictions.items():
        if requested is not None and name not in requested:
            continue
        width = len(values[0]) if values and isinstance(values[0], list) else None
        flat = _flatten(values) if width is not None else list(values)
        if all(isinstance(value, bool) for value in flat):
            datatype = "BOOL"
        elif all(isinstance(value, str) for value in flat):
            datatype = "BYTES"
        else:
            datatype = "FP64"
        shape = [len(values)] if width is None else [len(values), width]
        tensors.append({"name": name, "datatype": datatype, "shape": shape, "data": flat})
    return tensors


def requested_outputs(request: InferRequest, schema: ModelSchema) -> list[str] | None:
    if request.outputs is None:
        return None
    known = [column.name for column in schema.output_columns]
    for output in request.outputs:
        if output.name not in known:
            message = f"not an output of this model ({', '.join(known)})"
            raise field_error(400, f"outputs.{output.name[:100]}", message)
    return [output.name for output in request.outputs]


def infer_example(schema: ModelSchema) -> dict[str, Any]:
    """A valid inference request for ``schema``: one row."""
    row = example_row(schema)
    inputs = [
        {
            "name": name,
            "shape": [1],
            "datatype": "FP32" if isinstance(value, float) else "BYTES",
            "data": [value],
        }
        for name, value in row.items()
    ]
    return {"id": "example", "inputs": inputs}
