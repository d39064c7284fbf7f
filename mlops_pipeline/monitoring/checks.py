"""The two monitoring checks. Not enough data is "not evaluated" (passed, and says so), never a
failure: a retraining must not be triggered by an empty window."""

from __future__ import annotations

from mlops_pipeline.monitoring.results import CheckVerdict, DriftResult, PerformanceResult

DRIFT_CHECK = "drift"
PERFORMANCE_CHECK = "performance"


def drift_check(drift: DriftResult, share_threshold: float) -> CheckVerdict:
    """Fails when the share of drifted features is above the team's threshold."""
    share = drift.share
    if share is None:
        return CheckVerdict(DRIFT_CHECK, True, False, f"not evaluated: {drift.note}", {"reason": drift.note})
    details = {
        "drift_share": share,
        "threshold": share_threshold,
        "drifted_features": drift.drifted_features,
        "features": len(drift.features),
    }
    passed = share <= share_threshold
    verdict = "within" if passed else "above"
    return CheckVerdict(
        DRIFT_CHECK,
        passed,
        True,
        f"{len(drift.drifted_features)} of {len(drift.features)} features drifted "
        f"(share {share:.2f}, {verdict} the threshold {share_threshold:.2f})",
        details,
    )


def performance_check(
    performance: PerformanceResult, evaluation_error: float | None, tolerance: float
) -> CheckVerdict:
    """Fails when the champion does worse than the naive forecast over the same days, or when its
    live error exceeds ``tolerance`` times its own walk-forward evaluation error."""
    error, naive = performance.error, performance.naive_error
    if not performance.evaluated or error is None:
        reason = performance.note or "no error could be computed"
        return CheckVerdict(PERFORMANCE_CHECK, True, False, f"not evaluated: {reason}", {"reason": reason})
    measure = "MAE" if performance.kind == "regression" else "direction error rate"
    problems = []
    if naive is not None and error > naive:
        problems.append(f"worse than the naive forecast ({measure} {error:.4g} > {naive:.4g})")
    limit = None if evaluation_error is None else tolerance * evaluation_error
    if limit is not None and error > limit:
        problems.append(
            f"{measure} {error:.4g} is beyond {tolerance:g} x its evaluation error {evaluation_error:.4g}"
        )
    details = {
        "measure": measure,
        "live_error": error,
        "naive_error": naive,
        "evaluation_error": evaluation_error,
        "tolerance": tolerance,
        "n_predictions": performance.n_predictions,
    }
    if problems:
        return CheckVerdict(PERFORMANCE_CHECK, False, True, "; ".join(problems), details)
    baseline = "" if limit is not None else " (no evaluation error recorded for the champion)"
    return CheckVerdict(
        PERFORMANCE_CHECK,
        True,
        True,
        f"{measure} {error:.4g} within limits over {performance.n_predictions} days{baseline}",
        details,
    )
