"""Micro-batching and the parsed-series fast path give the predictions a request would get alone,
which equal ``LudwigModel.predict``."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from _serving_models import NUMBER_INPUTS, WINDOW_INPUT, TrainedModels, feature_frame

from mlops_pipeline.serving.batching import MicroBatcher
from mlops_pipeline.serving.inference import InferenceModel
from mlops_pipeline.serving.schema import InputSpec, InputValidationError, validate_columns

SERIES = InputSpec(WINDOW_INPUT, "timeseries", max_length=10)


def _columns(model: InferenceModel, frame) -> dict:
    columns = {name: frame[name].tolist() for name in frame.columns}
    return validate_columns(model.schema, columns, len(frame), allow_extra=True)


def test_series_text_is_parsed_at_once_into_full_length_rows_or_kept() -> None:
    from mlops_pipeline.serving.schema import _check_timeseries

    full = ["0.1 -2e-3 3 4 5 6 7 8 9 10", "1 2 3 4 5 6 7 8 9 10.5"]
    matrix, errors = _check_timeseries(SERIES, full)
    assert errors == [] and isinstance(matrix, np.ndarray) and matrix.shape == (2, 10)
    assert matrix[0, 1] == -0.002 and matrix[1, 9] == 10.5
    assert _check_timeseries(SERIES, ["1 2 3", "4 5"]) == (["1 2 3", "4 5"], [])
    # Other spellings take the row-by-row check, which rewrites them in the model's plain form.
    assert _check_timeseries(SERIES, ["+1  2", [3.0, 4]]) == (["1.0 2.0", "3.0 4.0"], [])
    for bad, problem in [("1 2 x", "not a number"), ("", "empty"), ("1e39", "float32"), ("1 nan", "finite")]:
        with pytest.raises(InputValidationError, match=problem):
            _validate_one(bad)


def _validate_one(value: str) -> None:
    from mlops_pipeline.serving.schema import ModelSchema

    validate_columns(ModelSchema([SERIES], []), {WINDOW_INPUT: [value]}, 1, allow_extra=False)


@pytest.mark.integration
def test_shorter_series_keep_the_text_path_and_equal_ludwig_predict(trained: TrainedModels, bundles) -> None:
    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel

    frame = feature_frame(20, seed=21)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    frame[WINDOW_INPUT] = [
        " ".join(window.split()[: 4 + row % 6]) for row, window in enumerate(frame[WINDOW_INPUT])
    ]
    model = InferenceModel(bundles["return"])
    columns = _columns(model, frame)
    assert isinstance(columns[WINDOW_INPUT], list)
    expected, _ = LudwigModel.load(
        str(trained.return_dir), backend="local", logging_level=logging.ERROR
    ).predict(dataset=frame)
    np.testing.assert_allclose(
        model.predict(columns)["target_next_return_predictions"],
        expected["target_next_return_predictions"],
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.integration
def test_concurrent_requests_share_one_pass_and_get_their_own_predictions(bundles) -> None:
    model = InferenceModel(bundles["return"])
    frame = feature_frame(24, seed=22)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    alone = model.predict(_columns(model, frame))["target_next_return_predictions"]
    requests = [_columns(model, frame.iloc[[row]]) for row in range(len(frame))]

    async def together() -> list[dict]:
        batcher = MicroBatcher(model)
        try:
            answers = await asyncio.gather(*(batcher.predict(columns, 1) for columns in requests))
        finally:
            batcher.close()
        assert batcher.passes == 1
        return answers

    answers = asyncio.run(together())
    served = [answer["target_next_return_predictions"][0] for answer in answers]
    np.testing.assert_allclose(served, alone, atol=1e-6, rtol=0)


@pytest.mark.integration
def test_a_request_that_breaks_a_pass_fails_alone(bundles) -> None:
    model = InferenceModel(bundles["return"])
    frame = feature_frame(4, seed=23)[[*NUMBER_INPUTS, WINDOW_INPUT]]
    requests = [_columns(model, frame.iloc[[row]]) for row in range(len(frame))]
    for columns in requests:  # series as text, so that all four join one pass
        columns[WINDOW_INPUT] = [" ".join(map(str, columns[WINDOW_INPUT][0]))]
    requests[2][WINDOW_INPUT] = ["1 2 oops"]  # unchecked input: the model's own parser refuses it

    async def together() -> list:
        batcher = MicroBatcher(model)
        try:
            return await asyncio.gather(
                *(batcher.predict(columns, 1) for columns in requests), return_exceptions=True
            )
        finally:
            batcher.close()

    answers = asyncio.run(together())
    assert isinstance(answers[2], Exception)
    assert all(isinstance(answers[row], dict) for row in (0, 1, 3))
