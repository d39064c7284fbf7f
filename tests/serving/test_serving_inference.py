"""The exported TorchScript bundle predicts exactly what LudwigModel.predict predicts."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from _serving_models import NUMBER_INPUTS, WINDOW_INPUT, TrainedModels, feature_frame

from mlops_pipeline.serving.inference import ONEDNN_MIN_ROWS, InferenceModel
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
    """Passes of fewer than ``ONEDNN_MIN_ROWS`` rows run the series encoder's convolutions
    without oneDNN, larger ones with it: both give Ludwig's predictions."""
    frame = feature_frame(50, seed=11)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    expected = _ludwig_predict(trained.return_dir, frame)["target_next_return_predictions"]
    model = InferenceModel(bundles["return"])
    whole = _served(model, frame)
    assert list(whole) == ["target_next_return_predictions"]
    chunk = ONEDNN_MIN_ROWS // 3
    in_small_passes = [
        value
        for start in range(0, len(frame), chunk)
        for value in _served(model, frame.iloc[start : start + chunk])["target_next_return_predictions"]
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
