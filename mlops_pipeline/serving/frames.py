"""The one internal input frame every protocol is turned into, and the shapes predictions are returned in.

Each protocol (Ludwig form, JSON records, MLflow split/records/instances/inputs/CSV, Open Inference
tensors) only reshapes its payload into an ``InputFrame``: columns of raw values by name. Type and
value checks happen once, afterwards, in ``schema.validate_columns``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.serving.errors import HTTPError, field_error


@dataclass(frozen=True)
class InputFrame:
    """Raw input columns (name -> one value per row) and the request field that holds the rows."""

    columns: dict[str, list[Any]]
    rows: int
    field: str


def from_columns(columns: Mapping[str, Sequence[Any]], field: str) -> InputFrame:
    """Columns given by name; every column must hold the same number of values."""
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        details = [
            {"field": f"{field}.{name}", "error": f"has {length} values"} for name, length in lengths.items()
        ]
        shown = ", ".join(f"{name[:40]}: {length}" for name, length in list(lengths.items())[:10])
        raise HTTPError(422, f"{field}: columns of unequal length ({shown})", details, "invalid")
    rows = next(iter(lengths.values()), 0)
    return InputFrame({name: list(values) for name, values in columns.items()}, rows, field)


def from_split(columns: Sequence[str], data: Sequence[Sequence[Any]], field: str) -> InputFrame:
    """A pandas "split" frame (rows already checked to be as wide as ``columns``)."""
    if len(set(columns)) != len(columns):
        raise field_error(422, f"{field}.columns", "duplicate column names", "invalid")
    if not data:
        return InputFrame({name: [] for name in columns}, 0, field)
    return InputFrame(dict(zip(columns, map(list, zip(*data, strict=True)), strict=True)), len(data), field)


def from_records(records: Sequence[Mapping[str, Any]], field: str) -> InputFrame:
    """A list of records; a key that some records have and others lack is an error naming the rows."""
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
        fields = ", ".join(error["field"] for error in errors)
        raise HTTPError(422, f"invalid input: missing in some records ({fields})", errors, reason="invalid")
    return InputFrame(columns, len(records), field)


def from_csv(body: bytes, field: str = "body") -> InputFrame:
    """A CSV table with a header row (``DataFrame.to_csv()``); every cell stays a string."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise field_error(400, field, f"CSV is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise field_error(400, field, f"malformed CSV: {exc}", "malformed") from exc
    table = [row for row in table if row]  # blank lines carry no row
    if not table:
        raise field_error(400, field, "CSV without a header row", "malformed")
    header, data = table[0], table[1:]
    for line, row in enumerate(data, start=2):
        if len(row) != len(header):
            message = f"CSV row {line - 1} has {len(row)} values for {len(header)} columns"
            raise field_error(400, field, message, "malformed")
    return from_split(header, data, field)


class _Missing:
    """Marks a key that some records have and others lack."""


# Predictions, in columns: output column name -> one value per row (see ``inference.Predictions``).
Predictions = Mapping[str, list[Any]]


def to_records(frame: Predictions) -> list[dict[str, Any]]:
    names = list(frame)
    return [dict(zip(names, row, strict=True)) for row in zip(*frame.values(), strict=True)]


def to_split(frame: Predictions) -> dict[str, Any]:
    data = [list(row) for row in zip(*frame.values(), strict=True)]
    return {"index": list(range(len(data))), "columns": list(frame), "data": data}
