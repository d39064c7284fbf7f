"""What every protocol's handlers share: auth, body reading, model choice, prediction, metrics, errors."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from mlops_pipeline.serving.batching import MicroBatcher
from mlops_pipeline.serving.errors import HTTPError, field_error
from mlops_pipeline.serving.frames import InputFrame
from mlops_pipeline.serving.inference import Predictions
from mlops_pipeline.serving.metrics import ServerMetrics
from mlops_pipeline.serving.registry import ModelRegistry, ServedModel
from mlops_pipeline.serving.schema import InputValidationError, validate_columns
from mlops_pipeline.serving.workers import WorkerGroup

# A route handler returns (JSON content, model name for metrics, rows predicted).
Handler = Callable[[Request], Awaitable[tuple[Any, str, int]]]
# Renders an error as a protocol's JSON body (the status stays the error's).
ErrorBody = Callable[[HTTPError], dict[str, Any]]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ServerConfig:
    max_rows: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    token: str | None = None  # bearer token; None disables auth
    code_version: str = "unknown"


def json_response(content: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json"
    )


def model_query(request: Request) -> str | None:
    """The ``?model=`` of a request (its query string is parsed only when there is one)."""
    return request.query_params.get("model") if request.scope["query_string"] else None


def default_error_body(error: HTTPError) -> dict[str, Any]:
    return {"error": error.message, "details": error.details}


@dataclass
class Server:
    registry: ModelRegistry
    config: ServerConfig
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    started_at: float = field(default_factory=time.time)
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)  # one per model, made on first use
    group: WorkerGroup | None = None  # the other worker processes serving on the same socket

    def render_metrics(self) -> str:
        """The whole server's metrics: this process's counters plus every other worker's."""
        return self.metrics.render(self.group.other_metrics() if self.group is not None else ())

    def authorize(self, request: Request) -> None:
        if self.config.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, supplied = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.encode(), self.config.token.encode()
        ):
            raise field_error(401, "authorization", "missing or invalid bearer token", "unauthorized")

    def pick_model(self, name: str | None, *, field: str = "model") -> ServedModel:
        """The model called ``name`` (from request field ``field``), or the only one when ``name`` is None."""
        if not self.registry.ready:
            reason = f": {self.registry.reason}" if self.registry.reason else ""
            raise HTTPError(503, f"models not ready ({self.registry.state}){reason}", reason="not_ready")
        models = self.registry.models
        if name is None:
            if len(models) == 1:
                return next(iter(models.values()))
            message = f"several models are loaded; choose one with ?model= ({sorted(models)})"
            raise HTTPError(400, message, [{"field": field, "error": "required"}])
        served = models.get(name)
        if served is None:
            message = f"unknown model {name[:100]!r}; loaded: {sorted(models)}"
            raise HTTPError(404, message, [{"field": field, "error": "unknown model"}], "unknown_model")
        return served

    async def read_body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise field_error(413, "body", f"request body over {limit} bytes", "too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise field_error(413, "body", f"request body over {limit} bytes", "too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_json(self, request: Request) -> Any:
        body = await self.read_body(request)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise field_error(400, "body", f"malformed JSON: {exc}", "malformed") from exc

    async def read_form(self, request: Request) -> dict[str, str]:
        request._body = await self.read_body(request)  # Starlette parses the form from the cached body
        try:
            form = await request.form(max_files=0, max_part_size=self.config.max_body_bytes)
        except Exception as exc:
            raise field_error(400, "body", f"malformed form data: {exc}", "malformed") from exc
        values = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise HTTPError(
                    422, f"field {key!r}: file uploads are not accepted", [{"field": key, "error": "a file"}]
                )
            values[key] = value
        return values

    async def predict(self, served: ServedModel, frame: InputFrame, *, strict: bool) -> Predictions:
        """Validate ``frame`` against the model's schema and predict (``strict``: refuse extra columns)."""
        if frame.rows == 0:
            raise field_error(422, frame.field, "empty batch: no rows to predict", "empty")
        if frame.rows > self.config.max_rows:
            message = f"{frame.rows} rows is over the limit of {self.config.max_rows}"
            raise field_error(413, frame.field, message, "too_many_rows")
        try:
            valid = validate_columns(served.model.schema, frame.columns, frame.rows, allow_extra=not strict)
        except InputValidationError as exc:
            fields = ", ".join(dict.fromkeys(error.field for error in exc.errors))
            details = [error.to_dict() for error in exc.errors]
            raise HTTPError(422, f"invalid input ({fields})", details, reason="invalid") from exc
        batcher = self.batchers.get(served.info.name)
        if batcher is None or batcher.model is not served.model:
            batcher = self.batchers[served.info.name] = MicroBatcher(served.model)
        return await batcher.predict(valid, frame.rows)

    def endpoint(
        self, name: str, handler: Handler, *, auth: bool = True, error_body: ErrorBody = default_error_body
    ) -> Endpoint:
        """Wrap ``handler``: auth, errors as JSON in the protocol's shape, latency and row metrics."""

        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            model_name = request.path_params.get("name") or model_query(request)
            if model_name is None and len(self.registry.models) == 1:
                model_name = next(iter(self.registry.models))
            if model_name not in self.registry.models:  # never a label from unchecked input
                model_name = "-"
            rows = 0
            try:
                if auth:
                    self.authorize(request)
                content, model_name, rows = await handler(request)
                response = json_response(content)
            except HTTPError as exc:
                self.metrics.error(model_name, exc.reason)
                response = json_response(error_body(exc), exc.status)
            except Exception as exc:
                self.metrics.error(model_name, "internal")
                failure = HTTPError(500, f"inference failed: {type(exc).__name__}", reason="internal")
                response = json_response(error_body(failure), 500)
            elapsed = time.perf_counter() - start
            self.metrics.observe(name, model_name, response.status_code, elapsed, rows)
            response.raw_headers.append((b"server-timing", b"app;dur=%.3f" % (elapsed * 1000)))
            return response

        return wrapped
