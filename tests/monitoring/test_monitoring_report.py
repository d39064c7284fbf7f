from __future__ import annotations

import re

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


def test_html_holds_summary_per_feature_tests_and_the_evidently_report() -> None:
    features = crafted_features()
    report = _report(features, _window_predictions(features, noise=0.002))
    html = report.html
    assert html.lstrip().lower().startswith("<!doctype html") or html.lstrip().startswith("<html")
    assert 'id="monitoring-summary"' in html
    assert "rsi_14" in html and "K-S p_value" in html
    assert "naive (tomorrow = today)" in html
    assert "drawDashboard" in html and "plotly" in html.lower()  # evidently's dashboard, inlined
    assert re.search(r"<script[^>]*\bsrc=", html, re.IGNORECASE) is None  # nothing loaded from outside
    assert "Missing predictions" not in html  # every day has a prediction


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
    assert "not enough data (n=7)" in report.html and "not enough data (n=2)" in report.html
    assert "Missing predictions (27)" in report.html
    assert "drift_share" not in report.numbers() and "mae" not in report.numbers()


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
    assert "Accuracy" in report.html  # evidently's classification widgets
