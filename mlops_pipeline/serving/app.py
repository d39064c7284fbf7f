"""The model server (ASGI, Starlette). See ``create_app`` for the routes.

Protocols:

- ``ludwig serve``: ``POST /predict`` (form fields, one per input) answers one flat record;
  ``POST /batch_predict`` (form field ``dataset``, pandas "split" JSON) answers a "split" frame.
- JSON: ``POST /v1/models/{name}/predict`` with ``{"records": [{...}, ...]}``.
- MLflow scoring: ``POST /invocations`` with ``dataframe_split`` or ``dataframe_records``.

With more than one model loaded the Ludwig and MLflow routes need ``?model=<name>``. Every error is
a JSON body ``{"error": ..., "details": [...]}`` with a 4xx status for bad input.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlops_pipeline.serving.metrics import ServerMetrics
from mlops_pipeline.serving.registry import ModelRegistry, ServedModel
from mlops_pipeline.serving.schema import InputValidationError, validate_columns

# A route handler returns (JSON content, model name for metrics, rows predicted).
Handler = Callable[[Request], Awaitable[tuple[Any, str, int]]]
INLINE_ROWS = 64  # larger batches run in a worker thread so that the event loop keeps answering


@dataclass(frozen=True)
class ServerConfig:
    max_rows: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    token: str | None = None  # bearer token; None disables auth
    code_version: str = "unknown"


class HTTPError(Exception):
    def __init__(self, status: int, message: str, details: Sequence[Any] = (), reason: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)
        self.reason = reason


class Records(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(min_length=1)


class SplitFrame(BaseModel):
    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None

    @model_validator(mode="after")
    def _rectangular(self) -> SplitFrame:
        width = len(self.columns)
        for position, row in enumerate(self.data):
            if len(row) != width:
                raise ValueError(f"data row {position} has {len(row)} values for {width} columns")
        return self


class Invocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataframe_split: SplitFrame | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    params: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Invocation:
        given = [key for key in ("dataframe_split", "dataframe_records") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of dataframe_split, dataframe_records")
        return self


def json_response(content: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json"
    )


def _pydantic_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in error["loc"]) or "body", "error": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]


def create_app(registry: ModelRegistry, config: ServerConfig, *, load_on_startup: bool = True) -> Starlette:
    """The ASGI app. Models load in a background thread at startup unless already loaded."""
    metrics = ServerMetrics()
    started_at = time.time()

    def authorize(request: Request) -> None:
        if config.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, supplied = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), config.token.encode()):
            raise HTTPError(401, "missing or invalid bearer token", reason="unauthorized")

    def pick_model(name: str | None) -> ServedModel:
        if not registry.ready:
            raise HTTPError(503, f"models not ready ({registry.state})", reason="not_ready")
        if name is None:
            if len(registry.models) == 1:
                return next(iter(registry.models.values()))
            raise HTTPError(
                400, f"several models are loaded; choose one with ?model= ({sorted(registry.models)})"
            )
        served = registry.models.get(name)
        if served is None:
            loaded = sorted(registry.models)
            raise HTTPError(404, f"unknown model {name!r}; loaded: {loaded}", reason="unknown_model")
        return served

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise HTTPError(413, f"request body over {config.max_body_bytes} bytes", reason="too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise HTTPError(413, f"request body over {config.max_body_bytes} bytes", reason="too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_json(request: Request) -> Any:
        body = await read_body(request)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPError(400, f"malformed JSON: {exc}", reason="malformed") from exc

    async def read_form(request: Request) -> dict[str, str]:
        request._body = await read_body(request)  # Starlette parses the form from the cached body
        try:
            form = await request.form(max_files=0, max_part_size=config.max_body_bytes)
        except Exception as exc:
            raise HTTPError(400, f"malformed form data: {exc}", reason="malformed") from exc
        values = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise HTTPError(422, f"field {key!r}: file uploads are not accepted", reason="invalid")
            values[key] = value
        return values

    async def run_model(
        served: ServedModel, columns: Mapping[str, Sequence[Any]], rows: int, *, strict: bool
    ):
        if rows == 0:
            raise HTTPError(422, "empty batch: no rows to predict", reason="empty")
        if rows > config.max_rows:
            message = f"{rows} rows is over the limit of {config.max_rows}"
            raise HTTPError(413, message, reason="too_many_rows")
        try:
            valid = validate_columns(served.model.schema, columns, rows, allow_extra=not strict)
        except InputValidationError as exc:
            raise HTTPError(
                422, "invalid input", [error.to_dict() for error in exc.errors], reason="invalid"
            ) from exc
        if rows <= INLINE_ROWS:
            return served.model.predict(valid)
        return await run_in_threadpool(served.model.predict, valid)

    def endpoint(
        name: str, handler: Handler, *, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            model_name = request.path_params.get("name") or request.query_params.get("model")
            if model_name is None and len(registry.models) == 1:
                model_name = next(iter(registry.models))
            if model_name not in registry.models:  # never a label from unchecked input
                model_name = "-"
            rows = 0
            try:
                if auth:
                    authorize(request)
                content, model_name, rows = await handler(request)
                response = json_response(content)
            except HTTPError as exc:
                metrics.error(model_name, exc.reason)
                response = json_response({"error": exc.message, "details": exc.details}, exc.status)
            except Exception as exc:
                metrics.error(model_name, "internal")
                response = json_response({"error": f"inference failed: {type(exc).__name__}"}, 500)
            elapsed = time.perf_counter() - start
            metrics.observe(name, model_name, response.status_code, elapsed, rows)
            response.headers["server-timing"] = f"app;dur={elapsed * 1000:.3f}"
            return response

        return wrapped

    async def ludwig_predict(request: Request):
        served = pick_model(request.query_params.get("model"))
        form = await read_form(request)
        columns = {key: [value] for key, value in form.items()}
        frame = await run_model(served, columns, 1, strict=False)
        return {key: values[0] for key, values in frame.items()}, served.info.name, 1

    async def ludwig_batch_predict(request: Request):
        served = pick_model(request.query_params.get("model"))
        form = await read_form(request)
        if "dataset" not in form:
            raise HTTPError(422, "form field 'dataset' (pandas split JSON) is required", reason="invalid")
        try:
            split = SplitFrame.model_validate_json(form["dataset"])
        except ValidationError as exc:
            raise HTTPError(422, "invalid 'dataset'", _pydantic_details(exc), reason="invalid") from exc
        frame = await run_model(served, _split_columns(split), len(split.data), strict=False)
        columns = list(frame)
        data = [list(row) for row in zip(*frame.values(), strict=True)]
        split_frame = {"index": list(range(len(data))), "columns": columns, "data": data}
        return split_frame, served.info.name, len(data)

    async def json_predict(request: Request):
        served = pick_model(request.path_params["name"])
        try:
            body = Records.model_validate(await read_json(request))
        except ValidationError as exc:
            raise HTTPError(422, "invalid request", _pydantic_details(exc), reason="invalid") from exc
        columns = _record_columns(body.records)
        frame = await run_model(served, columns, len(body.records), strict=True)
        result = {
            "model": served.info.name,
            "version": served.info.version,
            "run_id": served.info.run_id,
            "predictions": _records(frame),
        }
        return result, served.info.name, len(body.records)

    async def invocations(request: Request):
        served = pick_model(request.query_params.get("model"))
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if content_type != "application/json":
            raise HTTPError(415, f"content type {content_type!r}: only application/json is accepted")
        try:
            body = Invocation.model_validate(await read_json(request))
        except ValidationError as exc:
            raise HTTPError(422, "invalid request", _pydantic_details(exc), reason="invalid") from exc
        if body.dataframe_split is not None:
            columns, rows = _split_columns(body.dataframe_split), len(body.dataframe_split.data)
        else:
            records = body.dataframe_records or []
            columns, rows = _record_columns(records), len(records)
        frame = await run_model(served, columns, rows, strict=False)
        return {"predictions": _records(frame)}, served.info.name, rows

    async def info(request: Request):
        content = {
            "state": registry.state,
            "reason": registry.reason,
            "code_version": config.code_version,
            "started_at": started_at,
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
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def not_found(request: Request, exc: Exception) -> Response:
        return json_response({"error": f"no route {request.method} {request.url.path}", "details": []}, 404)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return json_response({"error": f"method {request.method} not allowed", "details": []}, 405)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if load_on_startup and registry.state == "loading":
            registry.start_loading()
        yield

    routes = [
        Route("/", root, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        Route("/info", endpoint("info", info), methods=["GET"]),
        Route("/predict", endpoint("predict", ludwig_predict), methods=["POST"]),
        Route("/batch_predict", endpoint("batch_predict", ludwig_batch_predict), methods=["POST"]),
        Route("/v1/models/{name}/predict", endpoint("v1_predict", json_predict), methods=["POST"]),
        Route("/invocations", endpoint("invocations", invocations), methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )


def _split_columns(split: SplitFrame) -> dict[str, list[Any]]:
    if len(set(split.columns)) != len(split.columns):
        raise HTTPError(422, "duplicate column names in the split frame", reason="invalid")
    return {name: [row[position] for row in split.data] for position, name in enumerate(split.columns)}


def _record_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    missing_marker = _Missing()
    columns = {name: [record.get(name, missing_marker) for record in records] for name in names}
    errors = [
        {"field": name, "rows": rows, "error": "missing"}
        for name, values in columns.items()
        if (rows := [row for row, value in enumerate(values) if value is missing_marker])
    ]
    if errors:
        raise HTTPError(422, "invalid input", errors, reason="invalid")
    return columns


class _Missing:
    """Marks a key that some records have and others lack."""


def _records(frame: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(frame)
    return [dict(zip(names, row, strict=True)) for row in zip(*frame.values(), strict=True)]
