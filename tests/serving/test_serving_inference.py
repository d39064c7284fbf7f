"""The exported bundle (TorchScript, and the forward pass in ONNX) predicts exactly what
LudwigModel.predict predicts."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from _serving_models import NUMBER_INPUTS, WINDOW_INPUT, TrainedModels, feature_frame

from mlops_pipeline.serving.bundle import MANIFEST, BundleError
from mlops_pipeline.serving.inference import ONEDNN_MIN_ROWS, InferenceModel
from mlops_pipeline.serving.onnx_predictor import ONNX_FILE
from mlops_pipeline.serving.schema import validate_columns


def _ludwig_predict(model_dir, frame):
    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel

    model = LudwigModel.load(str(model_dir), backend="local", logging_level=logging.ERROR)
    predictions, _ = model.predict(dataset=frame)
    return predictions


def _served(model: InferenceModel, frame):
    columns = {name: frame[name].tolist() for name in frame.columns}
    valid = validate_columns(model.schema, columns, len(frame), allow_extra=True)
    return model.predict(valid)


@pytest.mark.integration
def test_regression_bundle_equals_ludwig_predict_in_small_and_large_passes(
    trained: TrainedModels, bundles
) -> None:
    """A row's prediction is the same in a pass of 50 rows and in passes of a few rows."""
    frame = feature_frame(50, seed=11)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    expected = _ludwig_predict(trained.return_dir, frame)["target_next_return_predictions"]
    model = InferenceModel(bundles["return"])
    whole = _served(model, frame)
    assert list(whole) == ["target_next_return_predictions"]
    in_small_passes = [
        value
        for start in range(0, len(frame), 5)
        for value in _served(model, frame.iloc[start : start + 5])["target_next_return_predictions"]
    ]
    for served in (whole["target_next_return_predictions"], in_small_passes):
        np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)


@pytest.mark.integration
def test_binary_bundle_equals_ludwig_predict_with_the_same_columns(trained: TrainedModels, bundles) -> None:
    frame = feature_frame(50, seed=12)[NUMBER_INPUTS]
    expected = _ludwig_predict(trained.direction_dir, frame)
    served = _served(InferenceModel(bundles["direction"]), frame)
    assert set(served) == set(expected.columns)
    for column in expected.columns:
        if column.endswith("_predictions"):
            assert served[column] == expected[column].tolist()
        else:
            np.testing.assert_allclose(
                np.asarray(served[column], dtype=float),
                np.asarray(expected[column].tolist(), dtype=float),
                atol=1e-5,
                rtol=0,
            )


def _manifest(bundle) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


_ABSENT = object()


def _copy(bundle: Path, dest: Path, *, predictor: object = None, graph: bytes | None = None) -> Path:
    """A copy of ``bundle`` whose manifest's ``predictor`` entry is replaced (``_ABSENT``: removed)
    unless None, and whose ONNX graph is replaced by ``graph`` (``b""``: removed) unless None."""
    shutil.copytree(bundle, dest)
    if predictor is not None:
        manifest = _manifest(dest)
        if predictor is _ABSENT:
            del manifest["predictor"]
        else:
            manifest["predictor"] = predictor
        (dest / MANIFEST).write_text(json.dumps(manifest))
    if graph == b"":
        (dest / ONNX_FILE).unlink()
    elif graph is not None:
        (dest / ONNX_FILE).write_bytes(graph)
    return dest


@pytest.mark.integration
def test_exported_bundles_run_their_forward_pass_in_onnx_runtime(bundles) -> None:
    for bundle in bundles.values():
        assert _manifest(bundle)["predictor"] == {"runtime": "onnxruntime", "reason": None}
        assert (bundle / ONNX_FILE).is_file()
        assert InferenceModel(bundle).predictor_runtime == "onnxruntime"


@pytest.mark.integration
def test_a_bundle_exported_before_onnx_serves_the_same_predictions_with_torchscript(
    bundles, tmp_path: Path
) -> None:
    older = _copy(bundles["return"], tmp_path / "older", predictor=_ABSENT, graph=b"")
    frame = feature_frame(40, seed=13)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    expected = _served(InferenceModel(bundles["return"]), frame)["target_next_return_predictions"]
    model = InferenceModel(older)
    assert model.predictor_runtime == "torchscript"
    # TorchScript runs convolutions with oneDNN from ONEDNN_MIN_ROWS rows on, without it below
    chunk = ONEDNN_MIN_ROWS // 3
    in_small_passes = [
        value
        for start in range(0, len(frame), chunk)
        for value in _served(model, frame.iloc[start : start + chunk])["target_next_return_predictions"]
    ]
    for served in (_served(model, frame)["target_next_return_predictions"], in_small_passes):
        np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)


@pytest.mark.integration
def test_a_bundle_whose_manifest_names_a_missing_onnx_graph_is_refused(bundles, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=ONNX_FILE):
        InferenceModel(_copy(bundles["direction"], tmp_path / "broken", graph=b""))


@pytest.mark.integration
def test_a_corrupt_onnx_graph_or_an_unknown_runtime_is_refused_naming_the_file(
    bundles, tmp_path: Path
) -> None:
    corrupt = _copy(bundles["direction"], tmp_path / "corrupt", graph=b"not an ONNX graph")
    with pytest.raises(BundleError, match=f"unloadable ONNX graph .*{ONNX_FILE}"):
        InferenceModel(corrupt)
    later = _copy(bundles["direction"], tmp_path / "later", predictor={"runtime": "tensorrt", "reason": None})
    with pytest.raises(BundleError, match=r"serving\.json: predictor: expected runtime"):
        InferenceModel(later)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("disagrees", "ONNX output target_next_direction::"),
        ("fails", "ONNX export failed: RuntimeError"),
        ("unreadable", "ONNX check failed: "),
    ],
)
def test_a_model_onnx_cannot_express_faithfully_keeps_serving_with_torchscript(
    trained: TrainedModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breakage: str, reason: str
) -> None:
    from mlops_pipeline.serving import onnx_predictor
    from mlops_pipeline.serving.bundle import export_bundle

    def unsupported(model, training_set_metadata, schema):
        raise RuntimeError("Exporting the operator 'aten::example' to ONNX is not supported")

    if breakage == "disagrees":
        monkeypatch.setattr(onnx_predictor, "ATOL", -1.0)  # no graph can agree this closely
    elif breakage == "fails":
        monkeypatch.setattr(onnx_predictor, "_trace", unsupported)
    else:  # ONNX Runtime cannot load what the exporter wrote
        monkeypatch.setattr(onnx_predictor, "_trace", lambda *args: b"not an ONNX graph")
    bundle = export_bundle(trained.direction_dir, tmp_path / "bundle")
    choice = _manifest(bundle)["predictor"]
    assert choice["runtime"] == "torchscript"
    assert choice["reason"].startswith(reason)
    assert not (bundle / ONNX_FILE).exists()
    frame = feature_frame(20, seed=14)[NUMBER_INPUTS]
    expected = _ludwig_predict(trained.direction_dir, frame)
    served = _served(InferenceModel(bundle), frame)
    column = "target_next_direction_predictions"
    assert served[column] == expected[column].tolist()
