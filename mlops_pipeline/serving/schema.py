"""A served model's input and output schema, read from a Ludwig model directory, and input validation.

Validation is columnar (one list of values per input feature) and reports every problem at once,
naming the field and the rows, so a client sees ``close: row 0: not a number ('abc')`` instead of
the silent fill that ``ludwig serve`` applies.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SUPPORTED_INPUT_TYPES = frozenset({"number", "timeseries"})
MAX_ERRORS_PER_FIELD = 5
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the models compute in float32: larger values are inf


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str
    max_length: int | None = None  # timeseries only: the longest sequence seen in training


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: str
    class_names: list[str] = field(default_factory=list)  # binary/category outputs


@dataclass(frozen=True)
class OutputColumn:
    """One column of a prediction frame: its values' kind and, for one vector per row, the width."""

    name: str
    kind: str  # "number", "boolean", "string" or "any"
    width: int | None = None


_PREDICTION_KINDS = {"number": "number", "binary": "boolean", "category": "string"}


def output_columns(spec: OutputSpec) -> list[OutputColumn]:
    """The prediction columns of one output feature, named and ordered as ``InferenceModel`` makes them."""
    predictions = OutputColumn(f"{spec.name}_predictions", _PREDICTION_KINDS.get(spec.type, "any"))
    if spec.type not in {"binary", "category"}:
        return [predictions]
    return [
        OutputColumn(f"{spec.name}_probabilities", "number", len(spec.class_names)),
        predictions,
        *(OutputColumn(f"{spec.name}_probabilities_{name}", "number") for name in spec.class_names),
        OutputColumn(f"{spec.name}_probability", "number"),
    ]


@dataclass(frozen=True)
class ModelSchema:
    inputs: list[InputSpec]
    outputs: list[OutputSpec]

    @cached_property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @cached_property
    def number_inputs(self) -> list[str]:
        return [spec.name for spec in self.inputs if spec.type == "number"]

    @cached_property
    def input_set(self) -> frozenset[str]:
        return frozenset(self.input_names)

    @cached_property
    def output_columns(self) -> list[OutputColumn]:
        return [column for spec in self.outputs for column in output_columns(spec)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [asdict(spec) for spec in self.inputs],
            "outputs": [asdict(spec) for spec in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSchema:
        return cls(
            inputs=[InputSpec(**spec) for spec in data["inputs"]],
            outputs=[OutputSpec(**spec) for spec in data["outputs"]],
        )

    @classmethod
    def from_ludwig_dir(cls, model_dir: Path) -> ModelSchema:
        """The schema of the Ludwig model saved in ``model_dir`` (no ludwig import needed)."""
        hyper = json.loads((model_dir / "model_hyperparameters.json").read_text())
        metadata = json.loads((model_dir / "training_set_metadata.json").read_text())
        inputs = []
        for feature in hyper["input_features"]:
            kind = feature["type"]
            if kind not in SUPPORTED_INPUT_TYPES:
                raise ValueError(
                    f"{model_dir}: input feature {feature['name']!r} has type {kind!r}; "
                    f"the server supports {sorted(SUPPORTED_INPUT_TYPES)}"
                )
            max_length = metadata.get(feature["name"], {}).get("max_timeseries_length")
            inputs.append(InputSpec(feature["name"], kind, max_length if kind == "timeseries" else None))
        outputs = []
        for feature in hyper["output_features"]:
            meta = metadata.get(feature["name"], {})
            if feature["type"] == "binary":
                names = [str(name) for name in meta.get("bool2str", ["False", "True"])]
            else:
                names = [str(name) for name in meta.get("idx2str", [])]
            outputs.append(OutputSpec(feature["name"], feature["type"], names))
        return cls(inputs, outputs)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    rows: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "rows": self.rows, "error": self.message}


class InputValidationError(ValueError):
    """Request values that the model cannot take; ``errors`` names every offending field."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in self.errors))


# Validated, model-ready input columns: float64 arrays for numbers; for timeseries, a float64 matrix
# (one row of the model's full length per request row) or the canonical text of each row.
Columns = dict[str, np.ndarray | list[str]]


def validate_columns(
    schema: ModelSchema, columns: Mapping[str, Sequence[Any]], n_rows: int, *, allow_extra: bool
) -> Columns:
    """Check every input column (present, right type, finite, in schema) and return model inputs.

    ``allow_extra`` keeps ``ludwig serve``'s leniency towards fields the model does not use (the
    form and split endpoints); the JSON API refuses them as out of schema.
    """
    errors = [FieldError(name, "missing") for name in schema.input_names if name not in columns]
    if not allow_extra:
        errors.extend(
            FieldError(name, "not an input of this model (out of schema)")
            for name in columns
            if name not in schema.input_set
        )
    valid: Columns = _clean_numbers(schema.number_inputs, columns, n_rows)
    for spec in schema.inputs:
        if spec.name in valid or spec.name not in columns:
            continue
        values = columns[spec.name]
        if len(values) != n_rows:
            errors.append(FieldError(spec.name, f"has {len(values)} values for {n_rows} rows"))
            continue
        checker = _CHECKERS[spec.type]
        column, field_errors = checker(spec, values)
        errors.extend(field_errors)
        valid[spec.name] = column
    if errors:
        raise InputValidationError(errors)
    return valid


def _clean_numbers(
    names: list[str], columns: Mapping[str, Sequence[Any]], n_rows: int
) -> dict[str, np.ndarray]:
    """Every number column at once when all are present and clean (one conversion, one range
    check: a request's cost does not grow with its column count); empty when any needs the
    column-by-column check."""
    if not names:
        return {}
    try:
        matrix = np.array([columns[name] for name in names], dtype=np.float64)
    except (KeyError, TypeError, ValueError, OverflowError):
        return {}
    if matrix.shape != (len(names), n_rows) or not _in_float32_range(matrix):
        return {}
    if any(type(value) is bool for name in names for value in columns[name]):
        return {}
    return dict(zip(names, matrix, strict=True))


def _row_errors(name: str, bad: list[tuple[int, str]]) -> list[FieldError]:
    if not bad:
        return []
    shown = bad[:MAX_ERRORS_PER_FIELD]
    message = "; ".join(f"row {row}: {problem}" for row, problem in shown)
    if len(bad) > len(shown):
        message += f"; and {len(bad) - len(shown)} more row(s)"
    return [FieldError(name, message, [row for row, _ in bad])]


def _as_float(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, "missing (null)"
    if isinstance(value, bool):
        return None, f"not a number ({value!r})"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None, f"not a number ({_shown(value)})"
    if not math.isfinite(number):
        return None, f"not finite ({_shown(value)})"
    if abs(number) > FLOAT32_MAX:
        return None, f"out of the model's float32 range ({_shown(value)})"
    return number, None


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, float) else repr(str(value)[:40])


def _check_number(spec: InputSpec, values: Sequence[Any]) -> tuple[np.ndarray, list[FieldError]]:
    try:  # fast path: a clean numeric column converts in one call
        column = np.asarray(values, dtype=np.float64)
        if column.ndim == 1 and _in_float32_range(column) and not _has_bool(values):
            return column, []
    except (TypeError, ValueError, OverflowError):
        pass
    bad: list[tuple[int, str]] = []
    column = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        number, problem = _as_float(value)
        if problem is not None:
            bad.append((row, problem))
        else:
            column[row] = number
    return column, _row_errors(spec.name, bad)


def _in_float32_range(column: np.ndarray) -> bool:
    return column.size == 0 or bool(np.abs(column).max() <= FLOAT32_MAX)  # False for NaN and inf too


def _has_bool(values: Sequence[Any]) -> bool:
    return any(isinstance(value, bool) for value in values)


# Characters of plain decimal numbers separated by spaces; any other goes to the row-by-row check.
_NOT_NUMERIC = str.maketrans("", "", "0123456789.-+eE ")


def _plain_series(spec: InputSpec, values: Sequence[Any]) -> np.ndarray | list[str] | None:
    """The column checked in C when every value is text of finite float32 numbers, one space apart,
    within the model's length: one JSON parse of all rows (JSON's number grammar is a subset of
    what the model's parser takes). Rows of the model's full length come back as a float matrix
    (the model's preprocessing then skips its own text parsing); shorter rows as the text itself.
    ``None`` when any value needs the row-by-row check (lists, other spellings, errors)."""
    if not values or not all(isinstance(value, str) for value in values):
        return None
    joined = " ".join(values)
    if joined.translate(_NOT_NUMERIC):
        return None
    counts = [value.count(" ") + 1 for value in values]
    longest = max(counts)
    if spec.max_length and longest > spec.max_length:
        return None
    try:
        numbers = np.asarray(orjson.loads(f"[{joined.replace(' ', ',')}]"), dtype=np.float64)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None  # empty rows, doubled spaces, other spellings: the row-by-row check names them
    if numbers.ndim != 1 or len(numbers) != sum(counts):
        return None
    magnitude = np.abs(numbers)
    if not magnitude.max() <= FLOAT32_MAX:
        return None
    tiny = np.count_nonzero(magnitude < sys.float_info.min)  # zeros, or subnormals the model refuses
    if tiny and tiny != np.count_nonzero(numbers == 0):
        return None
    if spec.max_length and min(counts) == longest == spec.max_length:
        return numbers.reshape(len(values), spec.max_length)
    return list(values)


def _check_timeseries(
    spec: InputSpec, values: Sequence[Any]
) -> tuple[np.ndarray | list[str], list[FieldError]]:
    plain = _plain_series(spec, values)
    if plain is not None:
        return plain, []
    bad: list[tuple[int, str]] = []
    column: list[str] = []
    for row, value in enumerate(values):
        if isinstance(value, str):
            tokens: list[Any] = value.split()
        elif isinstance(value, list | tuple):
            tokens = list(value)
        else:
            bad.append((row, "must be a space-separated string or a list of numbers"))
            continue
        if not tokens:
            bad.append((row, "empty sequence"))
            continue
        if spec.max_length is not None and len(tokens) > spec.max_length:
            bad.append((row, f"{len(tokens)} values, the model takes at most {spec.max_length}"))
            continue
        numbers = []
        for token in tokens:
            number, problem = _as_float(token)
            if problem is not None:
                bad.append((row, f"element {problem}"))
                break
            numbers.append(number)
        else:  # canonical text: the model's tokenizer splits on single spaces and parses plain floats
            column.append(" ".join(repr(_normal(number)) for number in numbers))
    return column, _row_errors(spec.name, bad)


def _normal(number: float) -> float:
    """Subnormal doubles (0 in float32 anyway) as 0.0: the model's parser (C++ ``stod``) refuses them."""
    return number if abs(number) >= sys.float_info.min else 0.0


_CHECKERS = {
    "number": _check_number,
    "timeseries": _check_timeseries,
}
