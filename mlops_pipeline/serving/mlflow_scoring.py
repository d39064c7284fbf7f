"""MLflow's scoring protocol, as ``mlflow models serve`` speaks it: /ping, /version, /invocations.

``POST /invocations`` takes JSON (``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs``, with optional ``params``) or ``text/csv``, and answers ``{"predictions": [...]}``. Errors
carry MLflow's ``error_code`` and ``message`` (and the server's ``error`` and ``details``). With
more than one model loaded, ``?model=<name>`` chooses one.
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import metadata
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mlops_pipeline.serving import api_models as models
from mlops_pipeline.serving.errors import HTTPError, field_error, invalid_request
from mlops_pipeline.serving.frames import (
    InputFrame,
    from_columns,
    from_csv,
    from_records,
    from_split,
    to_records,
)
from mlops_pipeline.serving.openapi import Body, Operation, OperationDoc, example_row
from mlops_pipeline.serving.schema import ModelSchema
from mlops_pipeline.serving.server import Server, model_query

JSON = "application/json"
CSV = "text/csv"
ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error_body(error: HTTPError) -> dict[str, Any]:
    code = ERROR_CODES.get(error.status, "INTERNAL_ERROR" if error.status >= 500 else "BAD_REQUEST")
    return {"error_code": code, "message": error.message, "error": error.message, "details": error.details}


@cache
def mlflow_version() -> str:
    """The installed MLflow's version (``/version``), as MLflow's own server reports it."""
    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


@lru_cache(maxsize=64)
def media_type(header: str | None) -> str:
    """``application/json`` or ``text/csv`` from a Content-Type header (JSON when there is none)."""
    if not header:
        return JSON
    kind, *parameters = (part.strip() for part in header.split(";"))
    kind = kind.lower()
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise field_error(
                415, "content-type", f"unsupported parameter {parameter[:50]!r} (only charset=utf-8)"
            )
    if kind not in {JSON, CSV}:
        raise field_error(415, "content-type", f"{kind[:80]!r}: only {JSON} and {CSV} are accepted")
    return kind


def invocation_frame(body: models.Invocation) -> InputFrame:
    """The input frame of a validated JSON scoring request."""
    if body.dataframe_split is not None:
        split = body.dataframe_split
        return from_split(split.columns, split.data, "dataframe_split")
    if body.dataframe_records is not None:
        return from_records(body.dataframe_records, "dataframe_records")
    name = "instances" if body.instances is not None else "inputs"
    value = body.instances if body.instances is not None else body.inputs
    return from_records(value, name) if isinstance(value, list) else from_columns(value, name)


def _csv_example(schema: ModelSchema) -> str:
    row = example_row(schema)
    return f"{','.join(row)}\n{','.join(map(str, row.values()))}\n"


def routes(server: Server) -> list[Operation]:
    async def invocations(request: Request) -> tuple[Any, str, int]:
        served = server.pick_model(model_query(request))
        kind = media_type(request.headers.get("content-type"))
        if kind == CSV:
            frame = from_csv(await server.read_body(request))
        else:
            try:
                body = models.Invocation.model_validate(await server.read_json(request))
            except ValidationError as exc:
                raise invalid_request(exc) from exc
            frame = invocation_frame(body)
        predictions = await server.predict(served, frame, strict=False)
        return {"predictions": to_records(predictions)}, served.info.name, frame.rows

    async def ping(request: Request) -> Response:
        if server.registry.ready:
            return PlainTextResponse("\n")
        return PlainTextResponse(f"{server.registry.state}: {server.registry.reason or ''}\n", 503)

    async def version(request: Request) -> Response:
        return PlainTextResponse(mlflow_version())

    text = Body(schema={"type": "string"}, media_type="text/plain")
    errors = {status: Body(models.MlflowErrorBody) for status in (400, 401, 404, 413, 415, 422, 503)}
    scoring_doc = OperationDoc(
        summary="Predict (MLflow scoring protocol)",
        tag="mlflow",
        request=[
            Body(models.Invocation, example=lambda schema: {"dataframe_records": [example_row(schema)]}),
            Body(schema={"type": "string"}, media_type=CSV, example=_csv_example),
        ],
        responses={200: Body(models.Predictions), **errors},
        query={"model": "The model to use when several are loaded"},
        description="JSON: exactly one of dataframe_split, dataframe_records, instances, inputs. "
        "CSV: a header row of feature names (DataFrame.to_csv()).",
    )
    ping_doc = OperationDoc(
        summary="Ready to score (MLflow): 200 once every model is loaded",
        tag="mlflow",
        responses={200: text, 503: Body(schema={"type": "string"}, media_type="text/plain")},
    )
    return [
        Operation(
            "POST",
            "/invocations",
            "invocations",
            server.endpoint("invocations", invocations, error_body=error_body),
            scoring_doc,
            auth=True,
        ),
        Operation("GET", "/ping", "ping", ping, ping_doc),
        Operation(
            "GET",
            "/version",
            "version",
            version,
            OperationDoc(summary="MLflow version", tag="mlflow", responses={200: text}),
        ),
    ]
