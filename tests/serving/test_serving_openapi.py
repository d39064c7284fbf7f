"""The OpenAPI document covers every route, and schemathesis finds no server error in any operation.

schemathesis generates requests from the document (positive and negative cases, deterministic) and
calls the ASGI app in-process. Every answer must be documented, match its schema, never be a 5xx,
and every 4xx must be a JSON error whose details name the fields at fault.
"""

from __future__ import annotations

from collections import Counter

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from mlops_pipeline.serving.app import ServerConfig, create_app
from mlops_pipeline.serving.registry import ModelRegistry
from mlops_pipeline.serving.sources import parse_model_ref

pytestmark = pytest.mark.integration  # needs the trained models (shared by the whole session)

POSITIVE_EXAMPLES = 25
NEGATIVE_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _app(bundles, names=("red-AAPL",), config: ServerConfig | None = None):
    kinds = ["return", "direction"]
    refs = [parse_model_ref(f"{name}={bundles[kind]}") for name, kind in zip(names, kinds, strict=False)]
    registry = ModelRegistry(refs, tracking_uri=None)
    registry.load()
    assert registry.ready, registry.reason
    return create_app(registry, config or ServerConfig(), load_on_startup=False)


def test_the_document_covers_every_route_and_is_valid(bundles) -> None:
    app = _app(bundles, names=("red-AAPL", "red-MSFT"), config=ServerConfig(token="secret"))
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
    served = {(method, route.path) for route in app.routes for method in route.methods if method != "HEAD"}
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert served == documented
    operation_ids = [
        operation["operationId"] for item in doc["paths"].values() for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert doc["openapi"].startswith("3.1")
    for component in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(component)
    rows = doc["components"]["schemas"]["PredictionRow"]["anyOf"]  # one per model
    assert {"target_next_return_predictions"} == set(rows[0]["properties"])
    assert "target_next_direction_probabilities" in rows[1]["properties"]
    feature = doc["components"]["schemas"]["FeatureRow"]["anyOf"][0]["properties"]
    assert feature["rsi_14"]["type"] == "number" and "anyOf" in feature["return_window_10"]
    assert doc["paths"]["/v2/models/{name}/infer"]["post"]["security"] == [{"bearer": []}]


def _is_error_naming_fields(body: object) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
        return False
    details = body.get("details")
    return bool(details) and all(isinstance(d, dict) and isinstance(d.get("field"), str) for d in details)


def _fuzz(operation, strategy, examples: int, statuses: Counter[tuple[str, int]]) -> None:
    """Call ``operation`` with ``examples`` cases drawn from ``strategy``; check each answer."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:
        response = case.call()
        statuses[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            body = response.json()
            assert _is_error_naming_fields(body), (case.as_curl_command(), body)
            if operation.path == "/invocations":
                assert body["error_code"] and body["message"], body

    call()


def test_schemathesis_finds_no_server_error_in_any_operation(bundles) -> None:
    app = _app(bundles)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {
        f"{method.upper()} {path}" for path, item in schema.raw_schema["paths"].items() for method in item
    }
    assert {operation.label for operation in operations} == documented - {"GET /openapi.json"}  # loaded from

    for operation in operations:
        for documented_example in schema.get_strategies_from_examples(operation):
            _fuzz(operation, documented_example, 1, statuses)
        _fuzz(
            operation,
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            POSITIVE_EXAMPLES,
            statuses,
        )
        if operation.body:  # path and query parameters are any string: none to negate
            negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
            _fuzz(operation, negative, NEGATIVE_EXAMPLES, statuses)

    total = sum(statuses.values())
    assert total >= 200, statuses
    assert not [key for key in statuses if key[1] >= 500]
    succeeded = {label for (label, status) in statuses if status == 200}
    for operation in operations:  # every documented example is answered, by a prediction where it asks one
        if "{version}" not in operation.path:  # local bundles have no version: those routes are all 404
            assert operation.label in succeeded, statuses
