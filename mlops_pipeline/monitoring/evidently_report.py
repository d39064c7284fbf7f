"""evidently 0.7 reports (current API): per-feature data drift and prediction performance.

Drift runs one report with the reference window as reference data. Performance runs a second
report on the scored days only, with the champion and the naive forecast as two named tasks over
the same rows (regression presets for return models, a classification preset for direction
models). The two snapshots are rendered into one self-contained HTML document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_pipeline.monitoring.results import FeatureDrift, ModelKind

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

MIN_REFERENCE_ROWS = 30
MIN_CURRENT_ROWS = 5
NUMERIC_DRIFT_TEST = "ks"
CHAMPION_TASK = "champion"
NAIVE_TASK = "naive"


@dataclass(frozen=True)
class EvidentlyOutput:
    """Parsed drift tests and the rendered HTML (``None`` when no report could be run)."""

    features: list[FeatureDrift] = field(default_factory=list)
    html: str | None = None


def run_drift(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], drift_share: float
) -> Snapshot:
    """evidently's DataDriftPreset on ``columns`` (numeric), with per-column drift tests.

    The two-sample Kolmogorov-Smirnov test is used for every column: the current window is a few
    weeks of sessions, and evidently's default for references over 1,000 rows (normed Wasserstein
    distance, threshold 0.1) flags almost any 20-row sample as drifted.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    report = Report(
        [DataDriftPreset(columns=columns, drift_share=drift_share, num_method=NUMERIC_DRIFT_TEST)],
        include_tests=True,
    )
    return report.run(
        current_data=Dataset.from_pandas(current.loc[:, columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference.loc[:, columns], data_definition=definition),
    )


def run_performance(scored: pd.DataFrame, kind: ModelKind) -> Snapshot:
    """The champion and the naive forecast as two tasks over the same scored rows."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    if kind == "regression":
        frame = scored.loc[:, ["actual_close", "predicted_close", "naive_close"]].dropna()
        definition = DataDefinition(
            numerical_columns=list(frame.columns),
            regression=[
                Regression(name=CHAMPION_TASK, target="actual_close", prediction="predicted_close"),
                Regression(name=NAIVE_TASK, target="actual_close", prediction="naive_close"),
            ],
        )
        presets = [
            RegressionPreset(regression_name=CHAMPION_TASK),
            RegressionPreset(regression_name=NAIVE_TASK),
        ]
    else:
        frame = scored.loc[:, ["actual_direction", "prob_up", "predicted_direction"]].copy()
        use_probas = bool(frame["prob_up"].notna().all())
        frame = frame.dropna(subset=["predicted_direction"])
        frame["actual_direction"] = frame["actual_direction"].astype("int64")
        frame["predicted_direction"] = frame["predicted_direction"].astype("int64")
        task = (
            BinaryClassification(name=CHAMPION_TASK, target="actual_direction", prediction_probas="prob_up")
            if use_probas
            else BinaryClassification(
                name=CHAMPION_TASK, target="actual_direction", prediction_labels="predicted_direction"
            )
        )
        definition = DataDefinition(
            numerical_columns=["prob_up"],
            categorical_columns=["actual_direction", "predicted_direction"],
            classification=[task],
        )
        presets = [ClassificationPreset(classification_name=CHAMPION_TASK)]
    report = Report(presets, include_tests=False)
    return report.run(
        current_data=Dataset.from_pandas(frame.reset_index(drop=True), data_definition=definition)
    )


def parse_drift(snapshot: Snapshot) -> list[FeatureDrift]:
    """Per-feature method, score and verdict from the snapshot's ValueDrift metrics and tests.

    The verdict comes from evidently's own per-column test (a p-value test drifts below its
    threshold, a distance drifts at or above it), so no method's direction is re-implemented here.
    """
    content = snapshot.dict()
    verdicts: dict[str, bool] = {}
    for test in content.get("tests", []):
        metric_id = test.get("metric_config", {}).get("metric_id")
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and metric_id:
            status = test.get("status")
            verdicts[metric_id] = str(getattr(status, "value", status)).upper() == "FAIL"
    features: list[FeatureDrift] = []
    for metric in content.get("metrics", []):
        config: dict[str, Any] = metric.get("config", {})
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        features.append(
            FeatureDrift(
                feature=str(config["column"]),
                method=str(config.get("method")),
                score=float(metric["value"]),
                threshold=float(config.get("threshold")),
                drifted=verdicts[metric["id"]],
            )
        )
    return features


def render_html(snapshots: list[Snapshot]) -> str:
    """One self-contained HTML document with the widgets of every snapshot, in order."""
    from evidently.core.report import Snapshot

    models = [snapshot.to_snapshot_model() for snapshot in snapshots]
    merged = models[0].copy(
        update={
            "widgets": [widget for model in models for widget in model.widgets],
            "tests_widgets": [widget for model in models for widget in model.tests_widgets],
            "metric_results": {key: value for model in models for key, value in model.metric_results.items()},
            "top_level_metrics": [metric for model in models for metric in model.top_level_metrics],
        }
    )
    return Snapshot.load_model(merged).get_html_str(as_iframe=False)


def run_reports(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    columns: list[str],
    drift_share: float,
    scored: pd.DataFrame | None,
    kind: ModelKind,
) -> EvidentlyOutput:
    """Drift when both windows are large enough, performance when ``scored`` is given."""
    import warnings

    snapshots = []
    features: list[FeatureDrift] = []
    with warnings.catch_warnings():
        # sklearn warns about R^2 on tiny samples; the numbers monitoring uses are computed separately.
        warnings.simplefilter("ignore", category=UserWarning)
        if (
            reference is not None
            and len(reference) >= MIN_REFERENCE_ROWS
            and len(current) >= MIN_CURRENT_ROWS
        ):
            drift = run_drift(reference, current, columns, drift_share)
            features = parse_drift(drift)
            snapshots.append(drift)
        if scored is not None:
            snapshots.append(run_performance(scored, kind))
    return EvidentlyOutput(features=features, html=render_html(snapshots) if snapshots else None)
