"""Request and response models of the server's own routes (Ludwig, JSON API, MLflow, probes, errors).

They validate requests and make the OpenAPI document. A row of model inputs or outputs depends on
the loaded models: it is a reference (``FeatureRow``, ``FeatureColumns``, ``FeatureForm``,
``PredictionRow``) that ``openapi`` fills from the models' schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from mlops_pipeline.serving.onnx_predictor import Runtime

COMPONENTS = "#/components/schemas/"


def component(name: str) -> WithJsonSchema:
    """A JSON schema that refers to the document's component ``name``."""
    return WithJsonSchema({"$ref": COMPONENTS + name})


FeatureRow = Annotated[dict[str, Any], component("FeatureRow")]
FeatureColumns = Annotated[dict[str, list[Any]], component("FeatureColumns")]
PredictionRow = Annotated[dict[str, Any], component("PredictionRow")]
CellValue = Annotated[Any, WithJsonSchema({})]  # any JSON value


class ErrorDetail(BaseModel):
    field: str = Field(description="The request field at fault: a body path, a feature, a header or a query")
    error: str
    rows: list[int] | None = Field(None, description="Rows at fault, for a feature's values")


class ErrorBody(BaseModel):
    """Every error of the server's own routes and of the Open Inference Protocol."""

    error: str
    details: list[ErrorDetail] = []


class MlflowErrorBody(ErrorBody):
    """MLflow's error shape (``error_code``, ``message``), with the server's own fields as well."""

    error_code: str = Field(description="MLflow's error code, e.g. BAD_REQUEST or INVALID_PARAMETER_VALUE")
    message: str


class Records(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[FeatureRow] = Field(min_length=1)


class SplitFrame(BaseModel):
    """A pandas "split" frame: ``DataFrame.to_dict(orient="split")``."""

    columns: list[str]
    data: list[list[CellValue]]
    index: list[CellValue] | None = None

    @model_validator(mode="after")
    def _rectangular(self) -> SplitFrame:
        width = len(self.columns)
        for position, row in enumerate(self.data):
            if len(row) != width:
                raise ValueError(f"data row {position} has {len(row)} values for {width} columns")
        return self


_RECORDS_OR_COLUMNS = {
    "anyOf": [
        {"type": "array", "items": {"$ref": COMPONENTS + "FeatureRow"}, "minItems": 1},
        {"$ref": COMPONENTS + "FeatureColumns"},
    ]
}
# TF-serving style input: records (one object per row) or columns (feature -> one value per row).
RecordsOrColumns = Annotated[Any, WithJsonSchema(_RECORDS_OR_COLUMNS)]


INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _exactly_one_format(schema: dict[str, Any]) -> None:
    """In the JSON schema: exactly one input format, and no field given as null (leave it out instead)."""
    schema["oneOf"] = [{"required": [name]} for name in INVOCATION_FORMATS]
    for prop in schema["properties"].values():
        if "anyOf" in prop:
            prop["anyOf"] = [option for option in prop["anyOf"] if option != {"type": "null"}]


class Invocation(BaseModel):
    """MLflow's scoring request: exactly one of the four input fields, and optional ``params``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_format)

    dataframe_split: SplitFrame | None = None
    dataframe_records: list[FeatureRow] | None = Field(None, min_length=1)
    instances: RecordsOrColumns = Field(None, description="Records, or columns by feature name")
    inputs: RecordsOrColumns = Field(None, description="Records, or columns by feature name")
    params: dict[str, Any] | None = Field(None, description="Inference parameters; these models take none")

    @field_validator("instances", "inputs")
    @classmethod
    def _records_or_columns(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
        if isinstance(value, dict) and all(isinstance(item, list) for item in value.values()):
            return value
        raise ValueError("must be a list of records (objects) or an object of columns (lists)")

    @model_validator(mode="after")
    def _exactly_one(self) -> Invocation:
        given = [name for name in INVOCATION_FORMATS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(INVOCATION_FORMATS)}")
        return self


class BatchForm(BaseModel):
    dataset: str = Field(description='A pandas "split" frame as JSON: DataFrame.to_json(orient="split")')


class Predictions(BaseModel):
    """MLflow's scoring answer: one record per row."""

    predictions: list[PredictionRow]


class V1Predictions(Predictions):
    model: str
    version: str | None
    run_id: str | None


class SplitPredictions(BaseModel):
    index: list[int]
    columns: list[str]
    data: list[list[CellValue]]


class Message(BaseModel):
    message: str


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    models: list[str]


class NotReady(BaseModel):
    status: str = Field(description="loading or failed")
    reason: str | None


class ModelDescription(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    registered_name: str | None
    version: str | None
    aliases: list[str]
    run_id: str | None
    source: str
    model_schema: dict[str, Any] = Field(alias="schema")
    predictor_runtime: Runtime = Field(
        description="What runs the forward pass (TorchScript: exported before ONNX, or ONNX did not match)"
    )


class ServerInfo(BaseModel):
    state: str
    reason: str | None
    code_version: str
    started_at: float
    models: list[ModelDescription]
