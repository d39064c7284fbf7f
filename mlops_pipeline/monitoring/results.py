"""Plain result types shared by the monitoring modules (no pandas, no evidently)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ModelKind = Literal["regression", "direction"]


def not_enough_data(n: int) -> str:
    """The one wording used wherever a statistic is not computed for lack of rows."""
    return f"not enough data (n={n})"


@dataclass(frozen=True)
class FeatureDrift:
    """evidently's per-feature drift test: method, score (a p-value or a distance) and verdict."""

    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Drift of the current window against the reference window; ``note`` explains a missing share."""

    reference_rows: int
    current_rows: int
    reference_window: tuple[str, str] | None
    current_window: tuple[str, str] | None
    features: list[FeatureDrift] = field(default_factory=list)
    note: str | None = None

    @property
    def evaluated(self) -> bool:
        return bool(self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [item.feature for item in self.features if item.drifted]

    @property
    def share(self) -> float | None:
        return len(self.drifted_features) / len(self.features) if self.features else None


@dataclass(frozen=True)
class PerformanceResult:
    """Live quality of the champion's predictions and of the naive forecast over the same days.

    Price errors (MAE, RMSE in price units, MAPE in percent) compare the predicted close with the
    realized adjusted close of the target date; they are ``None`` for direction models. Directional
    accuracy is a fraction. ``error`` is the number the performance check uses: MAE for regressors,
    ``1 - directional accuracy`` for direction models.
    """

    kind: ModelKind
    n_predictions: int
    expected_days: list[str]
    missing_days: list[str]
    pending_days: list[str]
    unmatched_days: list[str] = field(default_factory=list)
    mae: float | None = None
    rmse: float | None = None
    mape: float | None = None
    directional_accuracy: float | None = None
    naive_mae: float | None = None
    naive_rmse: float | None = None
    naive_mape: float | None = None
    naive_directional_accuracy: float | None = None
    note: str | None = None

    @property
    def evaluated(self) -> bool:
        return self.note is None

    @property
    def error(self) -> float | None:
        if self.kind == "regression":
            return self.mae
        return None if self.directional_accuracy is None else 1.0 - self.directional_accuracy

    @property
    def naive_error(self) -> float | None:
        if self.kind == "regression":
            return self.naive_mae
        if self.naive_directional_accuracy is None:
            return None
        return 1.0 - self.naive_directional_accuracy


@dataclass(frozen=True)
class Champion:
    """The registered model version with alias ``champion`` and what monitoring needs from its run."""

    model_name: str
    version: str
    run_id: str
    first_date: str
    last_date: str
    evaluation_error: float | None = None


@dataclass(frozen=True)
class CheckVerdict:
    """One monitoring check: ``evaluated`` is False when there was not enough data to decide."""

    name: str
    passed: bool
    evaluated: bool
    description: str
    details: dict[str, Any] = field(default_factory=dict)
