from __future__ import annotations

import json

import pandas as pd
from _monitoring_frames import DIRECTION_INPUTS, RETURN_INPUTS, crafted_features, crafted_predictions

from mlops_pipeline.config.teams import MonitoringSpec, RetrainPolicy
from mlops_pipeline.monitoring.report import MonitoringReport, ReportRequest, build_report
from mlops_pipeline.monitoring.results import Champion
from mlops_pipeline.monitoring.windows import window_sessions

AS_OF = pd.Timestamp("2024-07-10")
SPEC = MonitoringSpec(
    window_days=30, drift_share_threshold=0.5, drift_severity="ERROR", performance_tolerance=1.5
)
CHAMPION = Champion("red-AAPL", "3", "run-1", "2023-02-01", "2024-03-28", evaluation_error=None)


def _report(
    features: pd.DataFrame,
    predictions: pd.DataFrame | None,
    champion: Champion | None = CHAMPION,
    inputs: list[str] = RETURN_INPUTS,
    output: str = "target_next_return",
) -> MonitoringReport:
    return build_report(
        ReportRequest(
            team="red",
            ticker="AAPL",
            as_of=AS_OF.date(),
            features=features,
            predictions=predictions,
            champion=champion,
            input_features=inputs,
            output_feature=output,
            monitoring=SPEC,
            retrain=RetrainPolicy(on_drift=True, cooldown_days=5),
        )
    )


def _window_predictions(features: pd.DataFrame, noise: float, direction: bool = False) -> pd.DataFrame:
    return crafted_predictions(
        features, window_sessions(features, AS_OF.date(), 30), noise, direction=direction
    )


def test_no_drift_passes_and_strong_drift_fails() -> None:
    stable = crafted_features()
    calm = _report(stable, _window_predictions(stable, noise=0.002))
    assert calm.drift.evaluated
    assert calm.drift_verdict.passed and calm.drift_verdict.evaluated
    assert calm.drift.share is not None and calm.drift.share <= 0.5
    assert {item.feature for item in calm.drift.features} == set(RETURN_INPUTS)
    assert all(item.method and item.threshold > 0 for item in calm.drift.features)

    shifted = crafted_features(drift_from="2024-05-01", shift=4.0)
    drifted = _report(shifted, _window_predictions(shifted, noise=0.002))
    assert not drifted.drift_verdict.passed
    assert drifted.drift.share is not None and drifted.drift.share > 0.5
    assert set(drifted.drift.drifted_features) >= {"rsi_14", "macd_hist", "volume_z_20"}
    assert "log_return_1" not in drifted.drift.drifted_features  # the untouched input stays put
    assert drifted.retrain_recommended and "drift" in drifted.status
    assert "requested automatically" in drifted.recommendation

    # The reference window is the champion's training window.
    assert drifted.drift.reference_window == ("2023-02-01", "2024-03-28")
    assert drifted.drift.current_rows == 30


def _metric_types(report: MonitoringReport) -> set[tuple[str, str]]:
    """(metric type, its task or column) of every metric result in the report's snapshot."""
    assert report.snapshot is not None
    found = set()
    for result in report.snapshot.to_snapshot_model().metric_results.values():
        params = result.metric_value_location.metric.params
        task = (
            params.get("regression_name") or params.get("classification_name") or params.get("column") or ""
        )
        found.add((params["type"].rsplit(":", 1)[-1], str(task)))
    return found


def test_snapshot_holds_drift_performance_and_its_labels_in_under_300_kb() -> None:
    from evidently.legacy.utils import NumpyEncoder

    features = crafted_features()
    report = _report(features, _window_predictions(features, noise=0.002))
    snapshot = report.snapshot
    assert snapshot is not None
    model = snapshot.to_snapshot_model()
    assert model.timestamp.date() == AS_OF.date()  # dashboards plot it at its session
    assert model.tags == ["team:red", "ticker:AAPL", "session:2024-07-10", "model_version:3"]
    assert model.metadata["status"] == report.status
    assert model.metadata["champion"] == "red-AAPL v3 (run run-1)"
    assert model.metadata["drift check"] == report.drift_verdict.description
    assert model.metadata["missing predictions"] == "none"
    metrics = _metric_types(report)
    assert {("DriftedColumnsCount", ""), ("ValueDrift", "rsi_14")} <= metrics
    assert {("MAE", "champion"), ("MAE", "naive"), ("RMSE", "champion"), ("RMSE", "naive")} <= metrics
    assert {("Accuracy", "direction"), ("Accuracy", "naive_direction")} <= metrics
    assert {("MeanValue", "predicted_close"), ("MeanValue", "actual_close")} <= metrics
    stored = json.dumps(model.dict(), cls=NumpyEncoder)
    assert 20_000 < len(stored) <= 300_000
    assert '"template"' not in stored  # plotly's template is not repeated in every figure
    html = snapshot.get_html_str(as_iframe=False)
    assert "rsi_14" in html and "K-S p_value" in html  # evidently renders it as before


def test_worse_than_naive_fails_the_performance_check() -> None:
    features = crafted_features()
    good = _report(features, _window_predictions(features, noise=0.001))
    assert good.performance_verdict.passed
    assert good.performance.mae is not None and good.performance.naive_mae is not None
    assert good.performance.mae < good.performance.naive_mae

    bad = _report(features, _window_predictions(features, noise=0.05))
    assert not bad.performance_verdict.passed
    assert "worse than the naive forecast" in bad.performance_verdict.description


def test_error_beyond_tolerance_of_its_own_evaluation_fails() -> None:
    features = crafted_features()
    predictions = _window_predictions(features, noise=0.001)
    fine = _report(features, predictions)
    assert fine.performance.mae is not None
    strict = Champion(**{**CHAMPION.__dict__, "evaluation_error": fine.performance.mae / 2})
    report = _report(features, predictions, champion=strict)
    assert not report.performance_verdict.passed
    assert "beyond 1.5 x its evaluation error" in report.performance_verdict.description


def test_too_few_rows_say_not_enough_data_instead_of_failing() -> None:
    features = crafted_features()
    short = Champion(**{**CHAMPION.__dict__, "first_date": "2024-03-20", "last_date": "2024-03-28"})
    sessions = window_sessions(features, AS_OF.date(), 30)
    report = _report(features, crafted_predictions(features, sessions[-3:]), champion=short)
    assert report.drift.share is None
    assert report.drift.note == "reference window: not enough data (n=7)"
    assert report.performance.note == "not enough data (n=2)"
    assert report.drift_verdict.passed and not report.drift_verdict.evaluated
    assert report.status == "not enough data" and not report.retrain_recommended
    assert report.snapshot is None  # no evidently report could run: a log line says why
    assert report.no_snapshot_reason() == (
        "no evidently report: reference window: not enough data (n=7); not enough data (n=2)"
    )
    assert len(report.performance.missing_days) == 27
    assert "drift_share" not in report.numbers() and "mae" not in report.numbers()


def test_all_missing_columns_are_named_and_the_others_still_tested() -> None:
    features = crafted_features()
    features.loc[features["date"] >= pd.Timestamp("2024-05-01"), "rsi_14"] = float("nan")
    report = _report(features, _window_predictions(features, noise=0.002))
    assert report.drift.evaluated and "rsi_14" not in {item.feature for item in report.drift.features}
    assert report.drift.note == "every value missing in the current window: rsi_14 (not tested for drift)"
    assert report.snapshot is not None
    assert report.snapshot.to_snapshot_model().metadata["drift note"] == report.drift.note

    blank = crafted_features()
    blank.loc[:, RETURN_INPUTS] = float("nan")
    empty = _report(blank, _window_predictions(blank, noise=0.002))
    assert not empty.drift.evaluated and not empty.drift_verdict.evaluated
    assert empty.drift.note is not None and empty.drift.note.startswith(
        "every value missing in the current window"
    )
    assert empty.performance.evaluated and empty.snapshot is not None  # performance still has its snapshot


def test_empty_windows_without_a_champion_give_a_reason_not_a_crash() -> None:
    features = crafted_features().iloc[:0]
    report = _report(features, None, champion=None)
    assert report.snapshot is None and report.status == "not enough data"
    assert report.no_snapshot_reason().startswith("no evidently report: no champion for model red-AAPL")


def test_without_a_champion_performance_is_still_reported() -> None:
    features = crafted_features()
    report = _report(features, _window_predictions(features, noise=0.002), champion=None)
    assert report.drift.note == "no champion for model red-AAPL: no reference window to compare with"
    assert report.performance.evaluated and report.performance.mae is not None


def test_direction_model_uses_the_classification_preset() -> None:
    features = crafted_features()
    predictions = _window_predictions(features, noise=0.003, direction=True)
    report = _report(features, predictions, inputs=DIRECTION_INPUTS, output="target_next_direction")
    assert report.kind == "direction"
    assert report.performance.mae is None
    accuracy = report.performance.directional_accuracy
    assert accuracy is not None and accuracy > 0.5
    assert {("Accuracy", "champion"), ("Accuracy", "direction"), ("MeanValue", "prob_up")} <= _metric_types(
        report
    )
    assert ("MAE", "champion") not in _metric_types(report)


def test_the_drift_report_skips_only_plots_that_evidently_discards() -> None:
    """The drift snapshot is the one evidently makes with every per-column plot drawn, and
    evidently's own per-column plots work again afterwards."""
    import re

    from evidently.metrics.column_statistics import ValueDriftCalculation

    from mlops_pipeline.monitoring.evidently_report import SnapshotLabels, merge_snapshots, run_drift

    features = crafted_features(drift_from="2024-05-01", shift=4.0)
    reference, current = features.iloc[:300], features.iloc[-30:]
    labels = SnapshotLabels("red", "AAPL", AS_OF.date(), "3")
    render = ValueDriftCalculation._render
    skipped = run_drift(reference, current, RETURN_INPUTS, 0.5)
    assert ValueDriftCalculation._render is render

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=RETURN_INPUTS)
    drawn = Report(
        [DataDriftPreset(columns=RETURN_INPUTS, drift_share=0.5, num_method="ks")], include_tests=True
    ).run(
        current_data=Dataset.from_pandas(current.loc[:, RETURN_INPUTS], data_definition=definition),
        reference_data=Dataset.from_pandas(reference.loc[:, RETURN_INPUTS], data_definition=definition),
    )
    assert any(result.widget for result in drawn._context._metrics.values())  # evidently drew them

    def stored(snapshot: object) -> str:
        text = json.dumps(merge_snapshots([snapshot], labels).to_snapshot_model().dict(), default=str)
        return re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", text)

    assert stored(skipped) == stored(drawn) and "rsi_14" in stored(drawn)


def test_figures_drawn_cheaply_leave_the_stored_snapshot_as_plotly_draws_it(monkeypatch) -> None:
    """A regression and a direction model's snapshots on drifted features are the ones plotly
    draws with its default template and its own path parsing, and plotly is as it was after."""
    import contextlib
    import re

    import plotly.basedatatypes
    import plotly.io

    from mlops_pipeline.monitoring import evidently_report

    parse, template = plotly.basedatatypes._str_to_dict_path_full, plotly.io.templates.default
    features = crafted_features(drift_from="2024-05-01", shift=4.0)
    models = [
        (RETURN_INPUTS, "target_next_return", _window_predictions(features, noise=0.01)),
        (
            DIRECTION_INPUTS,
            "target_next_direction",
            _window_predictions(features, noise=0.003, direction=True),
        ),
    ]

    def stored() -> list[str]:
        texts = []
        for inputs, output, predictions in models:
            snapshot = _report(features, predictions, inputs=inputs, output=output).snapshot
            assert snapshot is not None
            text = json.dumps(snapshot.to_snapshot_model().dict(), default=str)
            texts.append(re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", text))
        return texts

    cheaply = stored()
    assert plotly.basedatatypes._str_to_dict_path_full is parse
    assert plotly.io.templates.default == template
    monkeypatch.setattr(evidently_report, "figures_drawn_cheaply", contextlib.nullcontext)
    drawn = stored()
    assert cheaply == drawn
    assert all('"type": "histogram"' in text or '"type": "bar"' in text for text in drawn)


def test_the_fork_servers_rehearsal_makes_every_report_of_both_model_kinds() -> None:
    from mlops_pipeline.monitoring.evidently_report import rehearse_reports

    assert rehearse_reports() == 6  # drift, performance and latest prediction, twice
