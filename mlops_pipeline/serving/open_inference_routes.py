"""The Open Inference Protocol's routes (KServe V2): health, metadata, readiness and inference.

Health probes and model readiness are open; metadata and inference need the bearer token when one is
set. See ``open_inference`` for the tensors and their conversion.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from mlops_pipeline.serving.errors import HTTPError, field_error, invalid_request
from mlops_pipeline.serving.open_inference import (
    BINARY_HEADER,
    InferRequest,
    InferResponse,
    Live,
    ModelMetadata,
    ModelReady,
    ServerMetadata,
    ServerReady,
    V2Error,
    infer_example,
    model_metadata,
    output_tensors,
    requested_outputs,
    tensors_frame,
)
from mlops_pipeline.serving.openapi import Body, Operation, OperationDoc
from mlops_pipeline.serving.registry import ServedModel
from mlops_pipeline.serving.server import Server, json_response


def routes(server: Server) -> list[Operation]:
    registry = server.registry

    def choose(request: Request) -> ServedModel:
        served = server.pick_model(request.path_params["name"], field="name")
        version = request.path_params.get("version")
        if version is not None and version != served.info.version:
            message = (
                f"model {served.info.name!r} has no version {version[:40]!r} (serving {served.info.version})"
            )
            raise HTTPError(404, message, [{"field": "version", "error": "unknown version"}], "unknown_model")
        return served

    async def infer(request: Request) -> tuple[Any, str, int]:
        served = choose(request)
        if BINARY_HEADER in request.headers:
            message = "binary tensor data is not supported: send JSON tensors (binary_data=False)"
            raise field_error(415, BINARY_HEADER, message)
        try:
            body = InferRequest.model_validate(await server.read_json(request))
        except ValidationError as exc:
            raise invalid_request(exc) from exc
        requested = requested_outputs(body, served.model.schema)
        frame = tensors_frame(body.inputs, served.model.schema)
        predictions = await server.predict(served, frame, strict=True)
        answer: dict[str, Any] = {"model_name": served.info.name}
        if served.info.version:
            answer["model_version"] = served.info.version
        if body.id is not None:
            answer["id"] = body.id
        answer["outputs"] = output_tensors(predictions, requested)
        return answer, served.info.name, frame.rows

    async def metadata(request: Request) -> tuple[Any, str, int]:
        served = choose(request)
        return model_metadata(served), served.info.name, 0

    async def server_metadata(request: Request) -> Response:
        return json_response(
            {"name": "mlops-model-server", "version": server.config.code_version, "extensions": []}
        )

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        if registry.ready:
            return json_response({"ready": True})
        return json_response({"ready": False, "reason": f"{registry.state}: {registry.reason or ''}"}, 503)

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        if not registry.ready:
            reason = f"{registry.state}: {registry.reason or ''}"
            return json_response({"name": name, "ready": False, "reason": reason}, 503)
        try:
            served = choose(request)
        except HTTPError as exc:
            return json_response({"error": exc.message, "details": exc.details}, exc.status)
        return json_response({"name": served.info.name, "ready": True})

    errors = {status: Body(V2Error) for status in (400, 401, 404, 413, 415, 422, 503)}
    model_errors = {status: Body(V2Error) for status in (401, 404, 503)}
    infer_doc = OperationDoc(
        summary="Infer (Open Inference Protocol)",
        tag="open-inference",
        request=[Body(InferRequest, example=infer_example)],
        responses={200: Body(InferResponse), **errors},
    )
    metadata_doc = OperationDoc(
        summary="Model metadata (Open Inference Protocol)",
        tag="open-inference",
        responses={200: Body(ModelMetadata), **model_errors},
    )
    model_ready_doc = OperationDoc(
        summary="Model ready (Open Inference Protocol)",
        tag="open-inference",
        responses={200: Body(ModelReady), 404: Body(V2Error), 503: Body(ModelReady)},
    )
    operations = [
        Operation(
            "GET",
            "/v2",
            "v2_server_metadata",
            server_metadata,
            OperationDoc(
                summary="Server metadata", tag="open-inference", responses={200: Body(ServerMetadata)}
            ),
        ),
        Operation(
            "GET",
            "/v2/health/live",
            "v2_live",
            live,
            OperationDoc(summary="Server live", tag="open-inference", responses={200: Body(Live)}),
        ),
        Operation(
            "GET",
            "/v2/health/ready",
            "v2_ready",
            ready,
            OperationDoc(
                summary="Server ready: every model loaded",
                tag="open-inference",
                responses={200: Body(ServerReady), 503: Body(ServerReady)},
            ),
        ),
    ]
    for prefix, suffix in (("/v2/models/{name}", ""), ("/v2/models/{name}/versions/{version}", "_version")):
        operations += [
            Operation(
                "GET",
                prefix,
                f"v2_model_metadata{suffix}",
                server.endpoint("v2_model_metadata", metadata),
                metadata_doc,
                auth=True,
            ),
            Operation("GET", f"{prefix}/ready", f"v2_model_ready{suffix}", model_ready, model_ready_doc),
            Operation(
                "POST",
                f"{prefix}/infer",
                f"v2_infer{suffix}",
                server.endpoint("v2_infer", infer),
                infer_doc,
                auth=True,
            ),
        ]
    return operations
