"""The model server (ASGI, Starlette). See ``create_app`` for the routes.

Protocols:

- ``ludwig serve``: ``POST /predict`` (form fields, one per input) answers one flat record;
  ``POST /batch_predict`` (form field ``dataset``, pandas "split" JSON) answers a "split" frame.
- JSON: ``POST /v1/models/{name}/predict`` with ``{"records": [{...}, ...]}``.
- MLflow scoring (``mlflow_scoring``): ``/invocations``, ``/ping``, ``/version``.
- Open Inference Protocol, KServe V2 (``open_inference``, ``open_inference_routes``): ``/v2/...``.
- ``GET /openapi.json``: the OpenAPI document of every route.

Every protocol's input becomes one ``frames.InputFrame``, validated and predicted the same way. With
more than one model loaded the Ludwig and MLflow routes need ``?model=<name>``. Every error is a JSON
body ``{"error": ..., "details": [...]}`` (plus MLflow's or V2's own fields) with a 4xx status for
bad input; the details name the fields at fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mlops_pipeline.serving import api_models as models
from mlops_pipeline.serving import mlflow_scoring, open_inference_routes
from mlops_pipeline.serving.api_models import Records, SplitFrame
from mlops_pipeline.serving.errors import HTTPError, invalid_request
from mlops_pipeline.serving.frames import InputFrame, from_records, from_split, to_records, to_split
from mlops_pipeline.serving.openapi import (
    FORM_MEDIA_TYPES,
    Body,
    Operation,
    OperationDoc,
    document,
    example_row,
)
from mlops_pipeline.serving.registry import ModelRegistry
from mlops_pipeline.serving.schema import ModelSchema
from mlops_pipeline.serving.server import Endpoint, Server, ServerConfig, json_response, model_query
from mlops_pipeline.serving.workers import METRICS_PUBLISH_S, WorkerGroup

MODEL_QUERY = {"model": "The model to use when several are loaded"}


def create_app(
    registry: ModelRegistry,
    config: ServerConfig,
    *,
    load_on_startup: bool = True,
    group: WorkerGroup | None = None,
) -> Starlette:
    """The ASGI app. Models load in a background thread at startup unless already loaded. One of a
    ``group`` of worker processes publishes its metrics to the others while it runs."""
    server = Server(registry, config, group=group)
    operations = [
        *_own_routes(server),
        *mlflow_scoring.routes(server),
        *open_inference_routes.routes(server),
    ]
    documents: dict[str, dict[str, Any]] = {}

    async def openapi(request: Request) -> Response:
        key = registry.state  # the rows' components change once, when the models have loaded
        if key not in documents:
            served = list(registry.models.values()) if registry.ready else None
            documents[key] = document(
                operations, served, version=config.code_version, auth_enabled=config.token is not None
            )
        return json_response(documents[key])

    operations.append(
        Operation(
            "GET",
            "/openapi.json",
            "openapi",
            openapi,
            OperationDoc(
                summary="This document", tag="server", responses={200: Body(schema={"type": "object"})}
            ),
        )
    )

    async def not_found(request: Request, exc: Exception) -> Response:
        details = [{"field": "path", "error": "no such route"}]
        return json_response(
            {"error": f"no route {request.method} {request.url.path}", "details": details}, 404
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        details = [{"field": "method", "error": "not allowed on this route"}]
        return json_response({"error": f"method {request.method} not allowed", "details": details}, 405)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if load_on_startup and registry.state == "loading":
            registry.start_loading()
        if group is None:
            yield
            return
        publisher = asyncio.create_task(_publish_metrics(server, group))
        try:
            yield
        finally:
            publisher.cancel()
            group.publish_metrics(server.metrics.snapshot())

    # Routes match in order: the prediction routes first, as nearly every request is one of them.
    by_traffic = sorted(operations, key=lambda op: op.method != "POST")
    return ServingApp(
        direct={op.path: op.endpoint for op in operations if op.method == "POST" and "{" not in op.path},
        routes=[Route(op.path, op.endpoint, methods=[op.method]) for op in by_traffic],
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )


async def _publish_metrics(server: Server, group: WorkerGroup) -> None:
    while True:
        await asyncio.sleep(METRICS_PUBLISH_S)
        group.publish_metrics(server.metrics.snapshot())


class ServingApp(Starlette):
    """Starlette, except that a POST to a fixed-path prediction route (``/invocations``,
    ``/predict``, ``/batch_predict``) goes straight to its endpoint: Starlette's middleware and
    routing would cost a fifth of such a request, and the endpoint renders every error itself."""

    def __init__(self, *, direct: dict[str, Endpoint], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._direct.get(scope["path"])
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _own_routes(server: Server) -> list[Operation]:
    """Probes, /info, /metrics, the Ludwig form routes and the JSON API."""
    registry, config = server.registry, server.config

    async def ludwig_predict(request: Request) -> tuple[Any, str, int]:
        served = server.pick_model(model_query(request))
        form = await server.read_form(request)
        frame = InputFrame({key: [value] for key, value in form.items()}, 1, "body")
        predictions = await server.predict(served, frame, strict=False)
        return {key: values[0] for key, values in predictions.items()}, served.info.name, 1

    async def ludwig_batch_predict(request: Request) -> tuple[Any, str, int]:
        served = server.pick_model(model_query(request))
        form = await server.read_form(request)
        if "dataset" not in form:
            details = [{"field": "dataset", "error": "required"}]
            raise HTTPError(422, "form field 'dataset' (pandas split JSON) is required", details, "invalid")
        try:
            split = SplitFrame.model_validate_json(form["dataset"])
        except ValidationError as exc:
            raise invalid_request(exc, "invalid 'dataset'", prefix="dataset") from exc
        frame = from_split(split.columns, split.data, "dataset")
        predictions = await server.predict(served, frame, strict=False)
        return to_split(predictions), served.info.name, frame.rows

    async def json_predict(request: Request) -> tuple[Any, str, int]:
        served = server.pick_model(request.path_params["name"], field="name")
        try:
            body = Records.model_validate(await server.read_json(request))
        except ValidationError as exc:
            raise invalid_request(exc) from exc
        frame = from_records(body.records, "records")
        predictions = await server.predict(served, frame, strict=True)
        result = {
            "model": served.info.name,
            "version": served.info.version,
            "run_id": served.info.run_id,
            "predictions": to_records(predictions),
        }
        return result, served.info.name, frame.rows

    async def info(request: Request) -> tuple[Any, str, int]:
        content = {
            "state": registry.state,
            "reason": registry.reason,
            "code_version": config.code_version,
            "started_at": server.started_at,
            "models": [served.describe() for served in registry.models.values()],
        }
        return content, "-", 0

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def root(request: Request) -> Response:
        return json_response({"message": "model server is up"})

    async def ready(request: Request) -> Response:
        if registry.ready:
            return json_response({"status": "ready", "models": sorted(registry.models)})
        return json_response({"status": registry.state, "reason": registry.reason}, 503)

    async def metrics_text(request: Request) -> Response:
        return Response(server.render_metrics(), media_type="text/plain; version=0.0.4")

    errors = {status: Body(models.ErrorBody) for status in (400, 401, 404, 413, 422, 503)}
    form_schema = {"$ref": models.COMPONENTS + "FeatureForm"}
    form = [Body(schema=form_schema, media_type=kind, example=example_row) for kind in FORM_MEDIA_TYPES]
    batch_form = [
        Body(models.BatchForm, media_type=kind, example=_batch_example) for kind in FORM_MEDIA_TYPES
    ]
    text = Body(schema={"type": "string"}, media_type="text/plain")

    def probe(summary: str, responses: dict[int, Body]) -> OperationDoc:
        return OperationDoc(summary=summary, tag="server", responses=responses)

    return [
        Operation("GET", "/", "root", root, probe("Server up", {200: Body(models.Message)})),
        Operation("GET", "/health", "health", health, probe("Live", {200: Body(models.Health)})),
        Operation(
            "GET",
            "/ready",
            "ready",
            ready,
            probe("Every model loaded", {200: Body(models.Ready), 503: Body(models.NotReady)}),
        ),
        Operation("GET", "/metrics", "metrics", metrics_text, probe("Prometheus metrics", {200: text})),
        Operation(
            "GET",
            "/info",
            "info",
            server.endpoint("info", info),
            probe(
                "Loaded models, their versions and schemas", {200: Body(models.ServerInfo), 401: errors[401]}
            ),
            auth=True,
        ),
        Operation(
            "POST",
            "/predict",
            "predict",
            server.endpoint("predict", ludwig_predict),
            OperationDoc(
                summary="Predict one row from form fields (ludwig serve)",
                tag="ludwig",
                request=form,
                responses={200: Body(schema={"$ref": models.COMPONENTS + "PredictionRow"}), **errors},
                query=MODEL_QUERY,
            ),
            auth=True,
        ),
        Operation(
            "POST",
            "/batch_predict",
            "batch_predict",
            server.endpoint("batch_predict", ludwig_batch_predict),
            OperationDoc(
                summary='Predict a pandas "split" frame (ludwig serve)',
                tag="ludwig",
                request=batch_form,
                responses={200: Body(models.SplitPredictions), **errors},
                query=MODEL_QUERY,
            ),
            auth=True,
        ),
        Operation(
            "POST",
            "/v1/models/{name}/predict",
            "v1_predict",
            server.endpoint("v1_predict", json_predict),
            OperationDoc(
                summary="Predict records (JSON API); fields outside the model's inputs are refused",
                tag="json",
                request=[Body(models.Records, example=lambda schema: {"records": [example_row(schema)]})],
                responses={200: Body(models.V1Predictions), **errors},
            ),
            auth=True,
        ),
    ]


def _batch_example(schema: ModelSchema) -> dict[str, str]:
    row = example_row(schema)
    return {"dataset": json.dumps({"columns": list(row), "data": [list(row.values())]})}
