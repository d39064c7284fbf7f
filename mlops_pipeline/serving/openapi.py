"""The server's OpenAPI 3.1 document, made from the route table and the pydantic request/response models.

Every route is an ``Operation`` (its endpoint and its ``OperationDoc``), so the document cannot miss a
route. Rows of model inputs and outputs are components filled from the loaded models' schemas:
``FeatureRow``, ``FeatureColumns``, ``FeatureForm`` and ``PredictionRow``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from mlops_pipeline.serving.api_models import COMPONENTS
from mlops_pipeline.serving.registry import ServedModel
from mlops_pipeline.serving.schema import FLOAT32_MAX, InputSpec, ModelSchema, OutputColumn

Endpoint = Callable[[Request], Awaitable[Response]]
JSON = "application/json"
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Body:
    """A request or response body: a pydantic model, or a plain JSON schema, in one media type."""

    model: type[BaseModel] | None = None
    schema: Mapping[str, Any] | None = None
    media_type: str = JSON
    description: str = ""
    example: Callable[[ModelSchema], Any] | None = None  # a valid body for a loaded model


@dataclass(frozen=True)
class OperationDoc:
    summary: str
    tag: str
    responses: Mapping[int, Body]
    request: Sequence[Body] = ()
    query: Mapping[str, str] = field(default_factory=dict)  # optional string query parameters
    description: str = ""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str  # operationId, and the endpoint label in metrics
    endpoint: Endpoint
    doc: OperationDoc
    auth: bool = False


STATUS_TEXT = {
    200: "OK",
    400: "Malformed request, or a model must be chosen",
    401: "Missing or wrong bearer token",
    404: "Unknown model",
    413: "Body or batch over the server's limits",
    415: "Unsupported content type",
    422: "Invalid input; details name every field at fault",
    503: "Models not loaded (yet, or they failed)",
}


def document(
    operations: Iterable[Operation],
    served: Sequence[ServedModel] | None,
    *,
    version: str,
    auth_enabled: bool,
) -> dict[str, Any]:
    """The OpenAPI document of ``operations``; ``served``: the loaded models (None while loading)."""
    operations = list(operations)
    schemas = [model.model.schema for model in served] if served else None
    modes: dict[tuple[type[BaseModel], str], None] = {}
    for operation in operations:
        for body in operation.doc.request:
            if body.model is not None:
                modes[(body.model, "validation")] = None
        for body in operation.doc.responses.values():
            if body.model is not None:
                modes[(body.model, "serialization")] = None
    refs, definitions = models_json_schema(list(modes), ref_template=COMPONENTS + "{model}")
    components = {**definitions.get("$defs", {}), **row_components(schemas)}
    choices = _parameter_choices(served or [])

    def content(body: Body, mode: str) -> dict[str, Any]:
        media: dict[str, Any] = {
            "schema": refs[(body.model, mode)] if body.model is not None else dict(body.schema or {})
        }
        if schemas and body.example is not None:
            media["example"] = body.example(schemas[0])
        return {body.media_type: media}

    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        doc = operation.doc
        entry: dict[str, Any] = {
            "operationId": operation.name,
            "summary": doc.summary,
            "tags": [doc.tag],
            "parameters": _parameters(operation.path, doc.query, choices),
            "responses": {
                str(status): {
                    "description": body.description or STATUS_TEXT.get(status, ""),
                    "content": content(body, "serialization"),
                }
                for status, body in sorted(doc.responses.items())
            },
        }
        if doc.description:
            entry["description"] = doc.description
        if doc.request:
            merged: dict[str, Any] = {}
            for body in doc.request:
                merged.update(content(body, "validation"))
            entry["requestBody"] = {"required": True, "content": merged}
        if operation.auth and auth_enabled:
            entry["security"] = [{"bearer": []}]
        paths.setdefault(operation.path, {})[operation.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Model server",
            "version": version,
            "description": "Ludwig serve, JSON, MLflow scoring and Open Inference (KServe V2) protocols.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _parameter_choices(served: Sequence[ServedModel]) -> dict[str, dict[str, Any]]:
    """Schemas of the model-naming parameters: the loaded models' names and versions."""
    string: dict[str, Any] = {"type": "string", "minLength": 1}
    names = sorted(model.info.name for model in served)
    versions = sorted({model.info.version for model in served if model.info.version})
    return {
        "name": {**string, "enum": names} if names else string,
        "model": {**string, "enum": names} if names else string,
        "version": {**string, "enum": versions} if versions else string,
    }


def _parameters(path: str, query: Mapping[str, str], choices: Mapping[str, Any]) -> list[dict[str, Any]]:
    default = {"type": "string", "minLength": 1}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": choices.get(name, default)}
        for name in re.findall(r"{(\w+)}", path)
    ]
    parameters += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": choices.get(name, default),
        }
        for name, text in query.items()
    ]
    return parameters


EXAMPLE_SERIES = (0.01, -0.02, 0.03)


def example_row(schema: ModelSchema) -> dict[str, Any]:
    """A valid input row for ``schema``: the example of the documented request bodies."""
    return {
        spec.name: 0.01 if spec.type == "number" else " ".join(map(str, EXAMPLE_SERIES[: spec.max_length]))
        for spec in schema.inputs
    }


NUMBER = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
ARRAY = {"type": "array"}


def _series_text(max_length: int | None) -> dict[str, Any]:
    element = r"-?[0-9]{1,20}(\.[0-9]{1,12})?"
    repeat = f"{{0,{max_length - 1}}}" if max_length else "*"
    return {
        "type": "string",
        "pattern": f"^{element}( {element}){repeat}$",
        "description": "Numbers separated by spaces",
    }


def _input_value(spec: InputSpec, *, form: bool = False) -> dict[str, Any]:
    if spec.type == "number":
        return dict(NUMBER)
    text = _series_text(spec.max_length)
    if form:
        return text
    values = {"type": "array", "items": NUMBER, "minItems": 1}
    if spec.max_length:
        values["maxItems"] = spec.max_length
    return {"anyOf": [text, values]}


def _output_value(column: OutputColumn) -> dict[str, Any]:
    scalar = {
        "number": {"type": ["number", "null"], "description": "null when the output is not finite"},
        "boolean": {"type": "boolean"},
        "string": {"type": "string"},
    }.get(column.kind, {})
    if column.width is None:
        return scalar
    return {"type": "array", "items": scalar, "minItems": column.width, "maxItems": column.width}


def _object(properties: Mapping[str, Any], title: str) -> dict[str, Any]:
    return {"type": "object", "title": title, "properties": dict(properties), "required": list(properties)}


def _one_of_models(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return rows[0] if len(rows) == 1 else {"anyOf": rows}


def row_components(schemas: Sequence[ModelSchema] | None) -> dict[str, Any]:
    """Input and output rows: generic objects while loading, the models' features once loaded."""
    if not schemas:
        return {
            "InputTensorName": {"type": "string"},
            "OutputTensorName": {"type": "string"},
            "FeatureRow": {"type": "object", "description": "One value per input feature"},
            "FeatureColumns": {"type": "object", "additionalProperties": ARRAY},
            "FeatureForm": {"type": "object", "additionalProperties": {"type": "string"}},
            "PredictionRow": {"type": "object", "description": "One value per output column"},
        }
    rows, columns, forms, outputs = [], [], [], []
    for position, schema in enumerate(schemas, start=1):
        values = {spec.name: _input_value(spec) for spec in schema.inputs}
        rows.append(_object(values, f"Features of model {position}"))
        column_values = {name: {"type": "array", "items": value} for name, value in values.items()}
        columns.append(
            {**_object(column_values, f"Feature columns of model {position}"), "additionalProperties": ARRAY}
        )
        form_values = {spec.name: _input_value(spec, form=True) for spec in schema.inputs}
        forms.append(_object(form_values, f"Form fields of model {position}"))
        output_values = {column.name: _output_value(column) for column in schema.output_columns}
        outputs.append(_object(output_values, f"Predictions of model {position}"))
    inputs = sorted({spec.name for schema in schemas for spec in schema.inputs})
    output_names = sorted({column.name for schema in schemas for column in schema.output_columns})
    return {
        "InputTensorName": {"type": "string", "enum": inputs},
        "OutputTensorName": {"type": "string", "enum": output_names},
        "FeatureRow": _one_of_models(rows),
        "FeatureColumns": _one_of_models(columns),
        "FeatureForm": _one_of_models(forms),
        "PredictionRow": _one_of_models(outputs),
    }
