"""The server's routes: Ludwig form protocol, JSON API, MLflow /invocations, probes, errors, auth."""

from __future__ import annotations

import pytest
from _serving_models import NUMBER_INPUTS, ROW_FEATURES, WINDOW_INPUT, feature_frame
from starlette.testclient import TestClient

from mlops_pipeline.serving.app import ServerConfig, create_app
from mlops_pipeline.serving.inference import InferenceModel
from mlops_pipeline.serving.registry import ModelRegistry
from mlops_pipeline.serving.schema import validate_columns
from mlops_pipeline.serving.sources import parse_model_ref

pytestmark = pytest.mark.integration  # needs the trained models (shared by the whole session)

ROW = ROW_FEATURES


def _client(bundles, config: ServerConfig | None = None, *, names=("red-AAPL",)) -> TestClient:
    refs = [parse_model_ref(f"{name}={bundles['return']}") for name in names[:1]]
    refs += [parse_model_ref(f"{name}={bundles['direction']}") for name in names[1:]]
    registry = ModelRegistry(refs, tracking_uri=None)
    registry.load()
    assert registry.ready, registry.reason
    return TestClient(create_app(registry, config or ServerConfig(), load_on_startup=False))


def _expected(bundles, rows: list[dict]) -> list[float]:
    model = InferenceModel(bundles["return"])
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    return model.predict(validate_columns(model.schema, columns, len(rows), allow_extra=True))[
        "target_next_return_predictions"
    ]


@pytest.fixture
def client(bundles):
    with _client(bundles) as test_client:
        yield test_client


def test_probes_and_info(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "models": ["red-AAPL"]}
    info = client.get("/info").json()
    assert info["state"] == "ready" and info["code_version"]
    model = info["models"][0]
    assert model["name"] == "red-AAPL"
    assert model["predictor_runtime"] == "onnxruntime"
    assert [spec["name"] for spec in model["schema"]["inputs"]] == [*NUMBER_INPUTS, WINDOW_INPUT]
    assert model["schema"]["outputs"][0]["name"] == "target_next_return"


def test_ludwig_form_predict_matches_the_model_and_ignores_extra_fields(client, bundles) -> None:
    multipart = client.post("/predict", files={key: (None, value) for key, value in ROW.items()})
    urlencoded = client.post("/predict", data={**ROW, "date": "2024-05-01"})
    assert multipart.status_code == 200 and urlencoded.status_code == 200
    assert multipart.json() == urlencoded.json()
    assert list(multipart.json()) == ["target_next_return_predictions"]
    assert multipart.json()["target_next_return_predictions"] == pytest.approx(
        _expected(bundles, [ROW])[0], abs=1e-6
    )


def test_ludwig_batch_predict_answers_a_split_frame(client, bundles) -> None:
    frame = feature_frame(5, seed=3)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    dataset = frame.to_json(orient="split")
    response = client.post("/batch_predict", data={"dataset": dataset})
    assert response.status_code == 200
    body = response.json()
    assert body["columns"] == ["target_next_return_predictions"]
    assert body["index"] == [0, 1, 2, 3, 4]
    expected = _expected(bundles, frame.to_dict("records"))
    assert [row[0] for row in body["data"]] == pytest.approx(expected, abs=1e-6)


def test_json_api_and_invocations_agree(client, bundles) -> None:
    records = feature_frame(3, seed=4)[[*NUMBER_INPUTS, WINDOW_INPUT]].to_dict("records")
    v1 = client.post("/v1/models/red-AAPL/predict", json={"records": records}).json()
    by_records = client.post("/invocations", json={"dataframe_records": records}).json()
    split = {"columns": list(records[0]), "data": [list(record.values()) for record in records]}
    by_split = client.post("/invocations", json={"dataframe_split": split}).json()
    assert (
        v1["model"] == "red-AAPL"
        and v1["predictions"] == by_records["predictions"] == by_split["predictions"]
    )
    expected = _expected(bundles, records)
    assert [row["target_next_return_predictions"] for row in v1["predictions"]] == pytest.approx(
        expected, abs=1e-6
    )


def test_timeseries_as_a_list_of_numbers(client, bundles) -> None:
    as_list = {**ROW, WINDOW_INPUT: [float(value) for value in ROW[WINDOW_INPUT].split()]}
    response = client.post("/v1/models/red-AAPL/predict", json={"records": [as_list]})
    assert response.status_code == 200
    assert response.json()["predictions"][0]["target_next_return_predictions"] == pytest.approx(
        _expected(bundles, [ROW])[0], abs=1e-6
    )


@pytest.mark.parametrize(
    ("row", "field", "needle"),
    [
        ({**ROW, "rsi_14": "abc"}, "rsi_14", "not a number"),
        ({**ROW, "rsi_14": "nan"}, "rsi_14", "not finite"),
        ({**ROW, "volatility_20": "inf"}, "volatility_20", "not finite"),
        ({**ROW, WINDOW_INPUT: "0.1 x 0.2"}, WINDOW_INPUT, "not a number"),
        ({**ROW, WINDOW_INPUT: " ".join(["0.1"] * 11)}, WINDOW_INPUT, "at most 10"),
        ({key: value for key, value in ROW.items() if key != "rsi_14"}, "rsi_14", "missing"),
    ],
)
def test_form_validation_names_the_field(client, row, field, needle) -> None:
    response = client.post("/predict", data=row)
    assert response.status_code == 422
    details = response.json()["details"]
    assert [detail["field"] for detail in details] == [field]
    assert needle in details[0]["error"]


def test_every_bad_field_is_reported_at_once(client) -> None:
    record = {**{key: float(value) for key, value in ROW.items() if key != WINDOW_INPUT}, "rsi_14": None}
    record["volatility_20"] = "x"
    record["unknown"] = 1.0
    response = client.post("/v1/models/red-AAPL/predict", json={"records": [record]})
    assert response.status_code == 422
    fields = {detail["field"] for detail in response.json()["details"]}
    assert fields == {"rsi_14", "volatility_20", WINDOW_INPUT, "unknown"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        (
            "post",
            "/v1/models/red-AAPL/predict",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
        ),
        ("post", "/v1/models/red-AAPL/predict", {"json": {"records": []}}, 422),
        ("post", "/v1/models/red-AAPL/predict", {"json": {"rows": [ROW]}}, 422),
        ("post", "/v1/models/red-AAPL/predict", {"json": [ROW]}, 422),
        ("post", "/v1/models/nope/predict", {"json": {"records": [ROW]}}, 404),
        (
            "post",
            "/invocations",
            {"json": {"dataframe_records": [ROW], "dataframe_split": {"columns": [], "data": []}}},
            422,
        ),
        ("post", "/invocations", {"json": {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}}, 422),
        ("post", "/invocations", {"json": {"dataframe_records": []}}, 422),
        # CSV is understood; columns that are not the model's inputs are refused by name.
        ("post", "/invocations", {"content": b"a,b\n1,2", "headers": {"content-type": "text/csv"}}, 422),
        (
            "post",
            "/invocations",
            {"content": b"<rows/>", "headers": {"content-type": "application/xml"}},
            415,
        ),
        ("post", "/batch_predict", {"data": {"dataset": "{broken"}}, 422),
        ("post", "/batch_predict", {"data": {"other": "1"}}, 422),
        ("post", "/predict?model=nope", {"data": ROW}, 404),
        ("get", "/predict", {}, 405),
        ("get", "/nowhere", {}, 404),
    ],
)
def test_bad_requests_get_a_json_4xx(client, method, path, kwargs, status) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert "error" in response.json()


def test_size_and_row_limits(bundles) -> None:
    config = ServerConfig(max_rows=3, max_body_bytes=4096)
    with _client(bundles, config) as client:
        records = feature_frame(4, seed=5)[[*NUMBER_INPUTS, WINDOW_INPUT]].to_dict("records")
        too_many = client.post("/invocations", json={"dataframe_records": records})
        assert too_many.status_code == 413 and "limit of 3" in too_many.json()["error"]
        too_big = client.post("/invocations", json={"dataframe_records": [{"pad": "x" * 5000}]})
        assert too_big.status_code == 413


def test_bearer_token_is_required_when_configured(bundles) -> None:
    with _client(bundles, ServerConfig(token="s3cret-token")) as client:
        assert client.post("/predict", data=ROW).status_code == 401
        wrong = client.post("/predict", data=ROW, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.post("/predict", data=ROW, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        assert client.get("/ready").status_code == 200  # probes stay open


def test_several_models_are_routed_by_name(bundles) -> None:
    with _client(bundles, names=("red-AAPL", "red-MSFT")) as client:
        ambiguous = client.post("/predict", data=ROW)
        assert ambiguous.status_code == 400 and "?model=" in ambiguous.json()["error"]
        direction = client.post("/predict?model=red-MSFT", data=ROW).json()
        assert isinstance(direction["target_next_direction_predictions"], bool)
        assert 0 <= direction["target_next_direction_probabilities_True"] <= 1
        regression = client.post("/predict?model=red-AAPL", data=ROW).json()
        assert "target_next_return_predictions" in regression


def test_metrics_count_requests_errors_and_latency(client) -> None:
    client.post("/predict", data=ROW)
    client.post("/predict", data={**ROW, "rsi_14": "abc"})
    text = client.get("/metrics").text
    assert 'mlops_serving_requests_total{endpoint="predict",model="red-AAPL",status="200"} 1' in text
    assert 'mlops_serving_errors_total{model="red-AAPL",reason="invalid"} 1' in text
    assert 'mlops_serving_request_seconds_count{endpoint="predict"} 2' in text
