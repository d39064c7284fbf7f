"""MLflow scoring and Open Inference (KServe V2) protocols, each driven by its own client library.

MLflow's ``ScoringServerClient`` and Triton's ``tritonclient.http`` talk to a real uvicorn server on
127.0.0.1; the bad-input table runs in-process. Every answer must equal the model's own predictions.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import uvicorn
from _serving_models import NUMBER_INPUTS, ROW_FEATURES, WINDOW_INPUT, feature_frame
from starlette.testclient import TestClient

from mlops_pipeline.serving.app import ServerConfig, create_app
from mlops_pipeline.serving.inference import InferenceModel
from mlops_pipeline.serving.registry import ModelRegistry
from mlops_pipeline.serving.schema import validate_columns
from mlops_pipeline.serving.sources import parse_model_ref

pytestmark = pytest.mark.integration  # needs the trained models (shared by the whole session)

ROW = {
    **{name: float(ROW_FEATURES[name]) for name in NUMBER_INPUTS},
    WINDOW_INPUT: ROW_FEATURES[WINDOW_INPUT],
}
RETURN, DIRECTION = "red-AAPL", "red-MSFT"


def _registry(bundles, names=(RETURN,)) -> ModelRegistry:
    kinds = {RETURN: "return", DIRECTION: "direction"}
    registry = ModelRegistry([parse_model_ref(f"{name}={bundles[kinds[name]]}") for name in names], None)
    registry.load()
    assert registry.ready, registry.reason
    return registry


def _client(bundles, config: ServerConfig | None = None, names=(RETURN,)) -> TestClient:
    return TestClient(create_app(_registry(bundles, names), config or ServerConfig(), load_on_startup=False))


@contextlib.contextmanager
def _serving(app) -> Iterator[int]:
    """Run ``app`` under uvicorn on a free 127.0.0.1 port, in a thread; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _expected(bundle, rows: list[dict]) -> dict[str, list]:
    model = InferenceModel(bundle)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    return model.predict(validate_columns(model.schema, columns, len(rows), allow_extra=True))


def _frame(rows: int, seed: int):
    return feature_frame(rows, seed=seed)[[*NUMBER_INPUTS, WINDOW_INPUT]]


# ---- MLflow scoring protocol -------------------------------------------------------------------


def test_mlflow_scoring_client_against_a_real_server(bundles) -> None:
    import mlflow
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    frame = _frame(6, seed=21)
    expected = _expected(bundles["return"], frame.to_dict("records"))["target_next_return_predictions"]
    registry = _registry(bundles)
    with _serving(create_app(registry, ServerConfig(), load_on_startup=False)) as port:
        client = ScoringServerClient("127.0.0.1", port)
        client.wait_server_ready(timeout=30)
        assert client.get_version() == mlflow.__version__

        by_frame = client.invoke(frame).get_predictions()  # sends dataframe_split
        assert list(by_frame.columns) == ["target_next_return_predictions"]
        assert by_frame["target_next_return_predictions"].tolist() == expected

        with_params = client.invoke(frame, params={"temperature": 0.5}).get_predictions()
        assert with_params.equals(by_frame)

        by_list = client.invoke(frame.to_dict("records")).get_predictions()  # sends {"inputs": [...]}
        assert by_list.equals(by_frame)

        with pytest.raises(Exception, match="error code 422") as failure:
            client.invoke(frame.assign(rsi_14="abc"))
        body = json.loads(str(failure.value).split("response: ", 1)[1].rstrip(")"))
        assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "rsi_14" in body["message"]


def test_every_mlflow_input_format_and_csv_predict_the_same(bundles) -> None:
    frame = _frame(4, seed=22)
    records = frame.to_dict("records")
    values = _expected(bundles["return"], records)["target_next_return_predictions"]
    expected = {"predictions": [{"target_next_return_predictions": value} for value in values]}
    columns = frame.to_dict("list")
    bodies = [
        {"dataframe_split": frame.to_dict("split")},
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}},
        {"dataframe_records": records},
        {"instances": records},
        {"instances": columns},
        {"inputs": records},
        {"inputs": columns, "params": {"any": "thing"}},
    ]
    with _client(bundles) as client:
        for body in bodies:
            response = client.post("/invocations", json=body)
            assert response.status_code == 200, (list(body), response.text)
            assert response.json() == expected, list(body)
        for text, content_type in [
            (frame.to_csv(), "text/csv"),  # with pandas' unnamed index column
            (frame.to_csv(index=False), "text/csv; charset=utf-8"),
        ]:
            response = client.post("/invocations", content=text, headers={"content-type": content_type})
            assert response.status_code == 200, response.text
            assert response.json() == expected
        assert client.get("/ping").status_code == 200
        assert client.get("/health").json() == {"status": "ok"}  # the server's own liveness answer


# ---- Open Inference Protocol (KServe V2) ---------------------------------------------------------


def _triton_inputs(frame, *, window_as_numbers: bool = False):
    import tritonclient.http as triton

    inputs = []
    for name in NUMBER_INPUTS:
        tensor = triton.InferInput(name, [len(frame)], "FP32")
        inputs.append(tensor.set_data_from_numpy(frame[name].to_numpy(np.float32), binary_data=False))
    if window_as_numbers:
        windows = np.array([[float(v) for v in text.split()] for text in frame[WINDOW_INPUT]], np.float64)
        tensor = triton.InferInput(WINDOW_INPUT, list(windows.shape), "FP64")
        inputs.append(tensor.set_data_from_numpy(windows, binary_data=False))
    else:
        windows = np.array([text.encode() for text in frame[WINDOW_INPUT]], dtype=np.object_).reshape(-1, 1)
        tensor = triton.InferInput(WINDOW_INPUT, [len(frame), 1], "BYTES")
        inputs.append(tensor.set_data_from_numpy(windows, binary_data=False))
    return inputs


def test_tritonclient_against_a_real_server(bundles) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    frame = _frame(5, seed=23)
    records = frame.to_dict("records")
    expected_return = _expected(bundles["return"], records)
    expected_direction = _expected(bundles["direction"], records)
    app = create_app(_registry(bundles, (RETURN, DIRECTION)), ServerConfig(), load_on_startup=False)
    with _serving(app) as port:
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready(RETURN) and client.is_model_ready(DIRECTION)
            assert not client.is_model_ready("red-NOPE")
            assert client.get_server_metadata()["name"] == "mlops-model-server"
            metadata = client.get_model_metadata(RETURN)
            assert [tensor["name"] for tensor in metadata["inputs"]] == [*NUMBER_INPUTS, WINDOW_INPUT]

            result = client.infer(RETURN, _triton_inputs(frame), request_id="req-1")
            assert result.get_response()["id"] == "req-1"
            predictions = result.as_numpy("target_next_return_predictions")
            assert predictions.tolist() == expected_return["target_next_return_predictions"]
            as_numbers = client.infer(RETURN, _triton_inputs(frame, window_as_numbers=True))
            np.testing.assert_allclose(
                as_numbers.as_numpy("target_next_return_predictions"), predictions, atol=1e-6
            )

            direction = client.infer(DIRECTION, _triton_inputs(frame)[:3])
            assert (
                direction.as_numpy("target_next_direction_predictions").tolist()
                == (expected_direction["target_next_direction_predictions"])
            )
            probabilities = direction.as_numpy("target_next_direction_probabilities")
            assert probabilities.shape == (5, 2)
            assert probabilities.tolist() == expected_direction["target_next_direction_probabilities"]
            outputs = {tensor["name"]: tensor for tensor in direction.get_response()["outputs"]}
            described = client.get_model_metadata(DIRECTION)["outputs"]
            assert [tensor["name"] for tensor in described] == list(outputs)
            for tensor in described:
                assert tensor["datatype"] == outputs[tensor["name"]]["datatype"]
                assert tensor["shape"][1:] == outputs[tensor["name"]]["shape"][1:]

            only = triton.InferRequestedOutput("target_next_direction_probability", binary_data=False)
            picked = client.infer(DIRECTION, _triton_inputs(frame)[:3], outputs=[only])
            assert [tensor["name"] for tensor in picked.get_response()["outputs"]] == [only.name()]

            wrong = triton.InferInput("rsi_14", [5], "BYTES")
            wrong.set_data_from_numpy(np.array([b"1"] * 5, dtype=np.object_), binary_data=False)
            with pytest.raises(InferenceServerException, match=r"inputs\.rsi_14\.datatype") as failure:
                client.infer(DIRECTION, [*_triton_inputs(frame)[:1], wrong, _triton_inputs(frame)[2]])
            assert failure.value.status() == "400"

            binary = _triton_inputs(frame)[:3]
            binary[0].set_data_from_numpy(frame[NUMBER_INPUTS[0]].to_numpy(np.float32), binary_data=True)
            with pytest.raises(InferenceServerException, match="binary tensor data") as failure:
                client.infer(DIRECTION, binary)
            assert failure.value.status() == "415"
            assert client.is_server_live()  # still up
        finally:
            client.close()


def test_v2_routes_answer_in_the_specification_shapes(bundles) -> None:
    # The request of the specification's example, with this model's tensors.
    body = {
        "id": "42",
        "inputs": [
            *(
                {"name": name, "shape": [1], "datatype": "FP64", "data": [ROW[name]]}
                for name in NUMBER_INPUTS
            ),
            {"name": WINDOW_INPUT, "shape": [1], "datatype": "BYTES", "data": [ROW[WINDOW_INPUT]]},
        ],
        "outputs": [{"name": "target_next_return_predictions"}],
    }
    expected = _expected(bundles["return"], [ROW])["target_next_return_predictions"]
    with _client(bundles) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get(f"/v2/models/{RETURN}/ready").json() == {"name": RETURN, "ready": True}
        answer = client.post(f"/v2/models/{RETURN}/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "model_name": RETURN,
            "id": "42",
            "outputs": [
                {"name": "target_next_return_predictions", "datatype": "FP64", "shape": [1], "data": expected}
            ],
        }
        nested = {
            **body,
            "inputs": [{**tensor, "shape": [1, 1], "data": [tensor["data"]]} for tensor in body["inputs"]],
        }
        assert client.post(f"/v2/models/{RETURN}/infer", json=nested).json() == answer.json()
        versioned = client.post(f"/v2/models/{RETURN}/versions/7/infer", json=body)
        assert versioned.status_code == 404 and versioned.json()["details"][0]["field"] == "version"


# ---- bad input: a JSON 4xx that names the field, never a 5xx ----------------------------------------

V2_OK = [
    *({"name": name, "shape": [1], "datatype": "FP32", "data": [ROW[name]]} for name in NUMBER_INPUTS),
    {"name": WINDOW_INPUT, "shape": [1], "datatype": "BYTES", "data": [ROW[WINDOW_INPUT]]},
]


def _v2(*changes: dict, drop: str | None = None) -> dict:
    tensors = {tensor["name"]: dict(tensor) for tensor in V2_OK if tensor["name"] != drop}
    for change in changes:
        tensors[change["name"]] = {**tensors.get(change["name"], {}), **change}
    return {"inputs": list(tensors.values())}


def _raw(content: bytes, content_type: str = "application/json") -> dict:
    return {"content": content, "headers": {"content-type": content_type}}


def _records(**change) -> dict:
    return {"json": {"dataframe_records": [{**ROW, **change}]}}


def _split(columns: list, data: list) -> dict:
    return {"json": {"dataframe_split": {"columns": columns, "data": data}}}


def _tensor(name: str, **change) -> dict:
    return {"json": _v2({"name": name, **change})}


INV, INFER, CSV = "/invocations", f"/v2/models/{RETURN}/infer", "text/csv"
CSV_HEADER = ",".join([*NUMBER_INPUTS, WINDOW_INPUT]).encode()
BAD_REQUESTS = [
    # MLflow /invocations
    (INV, _raw(b"{oops"), 400, "body"),
    (INV, _raw(b'{"inputs": [NaN]}'), 400, "body"),
    (INV, _raw(b"[1, 2]"), 422, "body"),
    (INV, {"json": {"dataframe_records": [ROW], "extra": 1}}, 422, "extra"),
    (INV, {"json": {"inputs": [1, 2]}}, 422, "inputs"),
    (INV, {"json": {"inputs": {"rsi_14": 3}}}, 422, "inputs"),
    (INV, {"json": {"instances": {"rsi_14": [1, 2], "log_return_1": [1]}}}, 422, "instances.rsi_14"),
    (INV, {"json": {"inputs": []}}, 422, "inputs"),
    (INV, {"json": {"dataframe_records": [ROW], "params": [1]}}, 422, "params"),
    (INV, _split(["rsi_14"], [[1], 2]), 422, "dataframe_split.data.1"),
    (INV, _split(["a", "a"], [[1, 2]]), 422, "dataframe_split.columns"),
    (INV, _records(rsi_14="Infinity"), 422, "rsi_14"),
    (INV, _records(rsi_14=1e39), 422, "rsi_14"),
    (INV, _records(rsi_14=True), 422, "rsi_14"),
    (INV, _records(**{WINDOW_INPUT: {"a": 1}}), 422, WINDOW_INPUT),
    (INV, {"json": {"dataframe_records": [ROW, {"rsi_14": 1}]}}, 422, "log_return_1"),
    (f"{INV}?model=nope", _records(), 404, "model"),
    (INV, _raw(b"a,b\n1,2", "application/xml"), 415, "content-type"),
    (INV, _raw(b"a,b\n1,2", "text/csv; charset=latin-1"), 415, "content-type"),
    (INV, _raw(b"rsi_14,b\n1,2,3", CSV), 400, "body"),
    (INV, _raw(b'rsi_14\n"1', CSV), 400, "body"),
    (INV, _raw(b"rsi_14\n\xff\xfe", CSV), 400, "body"),
    (INV, _raw(b"", CSV), 400, "body"),
    (INV, _raw(CSV_HEADER + b"\n", CSV), 422, "body"),
    (INV, _raw(CSV_HEADER + b"\n1,nan,1,1 2\n", CSV), 422, "rsi_14"),
    # Open Inference Protocol
    (INFER, _raw(b"{oops"), 400, "body"),
    (INFER, {"json": {"inputs": []}}, 422, "inputs"),
    (INFER, {"json": {"inputs": [{"name": "rsi_14"}]}}, 422, "inputs.0.shape"),
    (INFER, _tensor("rsi_14", datatype="FP128"), 422, "inputs.1.datatype"),
    (INFER, _tensor("rsi_14", shape=[-1]), 422, "inputs.1.shape.0"),
    (INFER, _tensor("rsi_14", shape=["1"]), 422, "inputs.1.shape.0"),
    (INFER, _tensor("rsi_14", shape=[2]), 400, "inputs.rsi_14.data"),
    (INFER, _tensor("rsi_14", shape=[1, 2], data=[1.0, 2.0]), 400, "inputs.rsi_14.shape"),
    (INFER, _tensor("rsi_14", data=["x"]), 400, "inputs.rsi_14.data"),
    (INFER, _tensor("rsi_14", datatype="BOOL", data=[True]), 400, "inputs.rsi_14.datatype"),
    (INFER, _tensor("rsi_14", datatype="INT8", data=[300]), 400, "inputs.rsi_14.data"),
    (INFER, _tensor("rsi_14", data=[1e39]), 422, "rsi_14"),
    (INFER, _tensor(WINDOW_INPUT, data=["0.1 nan"]), 422, WINDOW_INPUT),
    (INFER, _tensor(WINDOW_INPUT, datatype="FP32", data=[0.1]), 400, f"inputs.{WINDOW_INPUT}"),
    (INFER, _tensor("rsi_14", shape=[2], data=[1.0, 2.0]), 422, "inputs.rsi_14"),
    (INFER, _tensor("bogus", shape=[1], datatype="FP32", data=[1.0]), 400, "inputs.bogus"),
    (INFER, {"json": _v2(drop="rsi_14")}, 422, "rsi_14"),
    (INFER, {"json": {**_v2(), "outputs": [{"name": "nope"}]}}, 400, "outputs.nope"),
    (INFER, {"json": _v2(*({"name": t["name"], "shape": [0], "data": []} for t in V2_OK))}, 422, "inputs"),
    ("/v2/models/nope/infer", {"json": _v2()}, 404, "name"),
    (
        INFER,
        {"json": _v2(), "headers": {"Inference-Header-Content-Length": "9"}},
        415,
        "inference-header-content-length",
    ),
    # the other routes, for the same rules
    (f"/v1/models/{RETURN}/predict", {"json": {"records": [{**ROW, "rsi_14": "nan"}]}}, 422, "rsi_14"),
    ("/batch_predict", {"data": {"dataset": '{"columns": ["a"], "data": [[1, 2]]}'}}, 422, "dataset"),
    ("/predict", {"data": {**ROW, WINDOW_INPUT: "1\t2\x00"}}, 422, WINDOW_INPUT),
]


def _names_the_field(body: dict, field: str) -> bool:
    fields = [detail.get("field", "") for detail in body.get("details", [])]
    return field in fields or any(name.startswith(f"{field}.") for name in fields)


@pytest.mark.parametrize(("path", "kwargs", "status", "field"), BAD_REQUESTS)
def test_bad_input_is_a_json_4xx_naming_the_field(bundles, path, kwargs, status, field) -> None:
    with _client(bundles) as client:
        response = client.post(path, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"], body
        assert _names_the_field(body, field), body
        if path.startswith("/invocations"):
            assert body["message"] == body["error"] and body["error_code"]
        assert client.get("/ping").status_code == 200


def test_batch_limits_on_every_protocol(bundles) -> None:
    frame = _frame(4, seed=24)
    tensors = [
        *(
            {"name": name, "shape": [4], "datatype": "FP64", "data": frame[name].tolist()}
            for name in NUMBER_INPUTS
        ),
        {"name": WINDOW_INPUT, "shape": [4], "datatype": "BYTES", "data": frame[WINDOW_INPUT].tolist()},
    ]
    with _client(bundles, ServerConfig(max_rows=3, max_body_bytes=64 * 1024)) as client:
        for path, kwargs, field in [
            ("/invocations", {"json": {"inputs": frame.to_dict("list")}}, "inputs"),
            ("/invocations", {"content": frame.to_csv(), "headers": {"content-type": "text/csv"}}, "body"),
            (INFER, {"json": {"inputs": tensors}}, "inputs"),
        ]:
            response = client.post(path, **kwargs)
            assert response.status_code == 413 and "limit of 3" in response.json()["error"]
            assert _names_the_field(response.json(), field)
        huge = client.post("/invocations", content="x" * 70_000, headers={"content-type": "text/csv"})
        assert huge.status_code == 413 and huge.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_timeseries_text_is_canonical_for_the_model(bundles) -> None:
    """Tabs, newlines and '1_0' parse as numbers in validation; the model gets plain floats."""
    window = [float(value) for value in ROW[WINDOW_INPUT].split()]
    expected = _expected(bundles["return"], [ROW])["target_next_return_predictions"]
    with _client(bundles) as client:
        for text in [
            "\t".join(map(str, window)),
            "\n".join(map(str, window)) + "\n",
            "  ".join(map(str, window)),
        ]:
            response = client.post("/invocations", json={"dataframe_records": [{**ROW, WINDOW_INPUT: text}]})
            assert response.status_code == 200, response.text
            assert response.json()["predictions"][0]["target_next_return_predictions"] == expected[0]


def test_auth_guards_predictions_and_metadata_not_probes(bundles) -> None:
    token = {"Authorization": "Bearer t0ken"}
    with _client(bundles, ServerConfig(token="t0ken")) as client:
        for path in ("/invocations", INFER):
            body = {"dataframe_records": [ROW]} if path == "/invocations" else _v2()
            denied = client.post(path, json=body)
            assert denied.status_code == 401 and _names_the_field(denied.json(), "authorization")
            assert client.post(path, json=body, headers=token).status_code == 200
        assert client.get(f"/v2/models/{RETURN}").status_code == 401
        assert client.get(f"/v2/models/{RETURN}", headers=token).status_code == 200
        for path in (
            "/ping",
            "/version",
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
            f"/v2/models/{RETURN}/ready",
        ):
            assert client.get(path).status_code == 200, path
        doc = client.get("/openapi.json").json()
        assert doc["paths"]["/invocations"]["post"]["security"] == [{"bearer": []}]
        assert "security" not in doc["paths"]["/ping"]["get"]


def test_a_model_that_fails_to_load_keeps_every_readiness_probe_at_503(tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "serving.json").write_text(json.dumps({"schema": {"inputs": [], "outputs": []}}))
    registry = ModelRegistry([parse_model_ref(f"x={broken}")], tracking_uri=None)
    with TestClient(create_app(registry, ServerConfig())) as client:
        registry.wait(30)
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed" and "lacks" in ready.json()["reason"]
        assert client.post("/predict", data=ROW).status_code == 503
        v2_ready = client.get("/v2/health/ready")
        assert v2_ready.status_code == 503 and "lacks" in v2_ready.json()["reason"]
        assert v2_ready.json()["ready"] is False
        assert client.get("/ping").status_code == 503 and "lacks" in client.get("/ping").text
        model_ready = client.get("/v2/models/x/ready")
        assert model_ready.status_code == 503 and "lacks" in model_ready.json()["reason"]
        scoring = client.post("/invocations", json={"dataframe_records": [ROW]})
        assert scoring.status_code == 503 and scoring.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert client.post("/v2/models/x/infer", json=_v2()).status_code == 503
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/health").status_code == 200


def test_a_real_server_stays_up_through_bad_input(bundles) -> None:
    with _serving(create_app(_registry(bundles), ServerConfig(), load_on_startup=False)) as port:
        base = f"http://127.0.0.1:{port}"
        for path, kwargs, status, _ in BAD_REQUESTS[:10]:
            assert httpx.post(base + path, timeout=10, **kwargs).status_code == status
        assert httpx.get(f"{base}/v2/health/ready", timeout=10).json() == {"ready": True}
