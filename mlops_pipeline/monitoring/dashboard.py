"""A team's evidently project and dashboard, built in code with stable ids.

Every id (project, panel) is derived from the team, the ticker and the panel's name, so building
the dashboard again gives an identical model: writing it is idempotent, and a changed ticker list
or model kind is a plain replacement. Panels select a ticker's snapshots by the tag
``ticker:<TICKER>`` and a metric by evidently's metric type and parameters. evidently's open-source
UI shows one tab per project (it refuses more), so the panels come in order: every ticker side by
side first, then each ticker's own panels, titled with the ticker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_pipeline.monitoring.evidently_report import (
    CHAMPION_TASK,
    DIRECTION_TASK,
    LATEST_COLUMNS,
    NAIVE_DIRECTION_TASK,
    NAIVE_TASK,
)
from mlops_pipeline.monitoring.results import ModelKind

if TYPE_CHECKING:
    from evidently.sdk.models import DashboardModel, DashboardPanelPlot, PanelMetric

NAMESPACE = uuid.UUID("5f0c2c1e-7d2a-4b8e-9a51-3c7e2f6d9b10")


def project_name(team: str) -> str:
    return f"team {team}"


def project_id(team: str) -> uuid.UUID:
    """The team's project id: the same in every workspace, so a project is never created twice."""
    return uuid.uuid5(NAMESPACE, f"project:{team}")


def _id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, ":".join(parts))


@dataclass(frozen=True)
class Series:
    """One line or bar of a panel: a metric of the snapshots tagged with ``ticker``."""

    legend: str
    metric: str
    labels: tuple[tuple[str, str], ...]

    def panel_metric(self, ticker: str) -> PanelMetric:
        from evidently.sdk.models import PanelMetric

        return PanelMetric(
            legend=self.legend, tags=[f"ticker:{ticker}"], metric=self.metric, metric_labels=dict(self.labels)
        )


DRIFT_SHARE = Series("drift share", "DriftedColumnsCount", (("value_type", "share"),))
DRIFTED_COLUMNS = Series("drifted columns", "DriftedColumnsCount", (("value_type", "count"),))


def _error(metric: str, task: str, legend: str) -> Series:
    labels = (("regression_name", task),) + ((("value_type", "mean"),) if metric == "MAE" else ())
    return Series(legend, metric, labels)


def _accuracy(task: str, legend: str) -> Series:
    return Series(legend, "Accuracy", (("classification_name", task),))


def _latest(column: str, legend: str) -> Series:
    return Series(legend, "MeanValue", (("column", column),))


def ticker_panels(kind: ModelKind) -> list[tuple[str, str, str, list[Series]]]:
    """(key, title, plot type, series) of every panel of a ticker's tab."""
    predicted, realized = LATEST_COLUMNS[kind]
    panels: list[tuple[str, str, str, list[Series]]] = [
        ("drift-share", "Drift share of the input features", "line", [DRIFT_SHARE]),
        ("drifted-columns", "Drifted input features", "bar", [DRIFTED_COLUMNS]),
    ]
    if kind == "regression":
        panels += [
            (
                "mae",
                "MAE of the predicted close: champion vs naive (tomorrow = today)",
                "line",
                [_error("MAE", CHAMPION_TASK, "champion"), _error("MAE", NAIVE_TASK, "naive")],
            ),
            (
                "rmse",
                "RMSE of the predicted close: champion vs naive",
                "line",
                [_error("RMSE", CHAMPION_TASK, "champion"), _error("RMSE", NAIVE_TASK, "naive")],
            ),
        ]
    panels += [
        (
            "directional-accuracy",
            "Directional accuracy: champion vs naive",
            "line",
            [_accuracy(DIRECTION_TASK, "champion"), _accuracy(NAIVE_DIRECTION_TASK, "naive")],
        ),
        (
            "predicted-vs-realized",
            "Latest scored prediction vs realized"
            + (" close" if kind == "regression" else " direction (probability up vs 1 = up)"),
            "line",
            [_latest(predicted, "predicted"), _latest(realized, "realized")],
        ),
    ]
    return panels


def _panel(
    panel_id: uuid.UUID, title: str, plot_type: str, metrics: list[PanelMetric], size: str = "half"
) -> DashboardPanelPlot:
    from evidently.sdk.models import DashboardPanelPlot

    return DashboardPanelPlot(
        id=panel_id,
        title=title,
        subtitle=None,
        size=size,
        values=metrics,
        plot_params={"plot_type": plot_type},
    )


def build_dashboard(team: str, tickers: list[str], kind: ModelKind) -> DashboardModel:
    """The overview panels (drift share and the main error of every ticker), then each ticker's."""
    from evidently.sdk.models import DashboardModel

    main = _error("MAE", CHAMPION_TASK, "") if kind == "regression" else _accuracy(DIRECTION_TASK, "")
    overview = [
        _panel(
            _id(team, "overview", "drift-share"),
            "Drift share by ticker",
            "line",
            [
                Series(ticker, DRIFT_SHARE.metric, DRIFT_SHARE.labels).panel_metric(ticker)
                for ticker in tickers
            ],
        ),
        _panel(
            _id(team, "overview", "error"),
            ("MAE of the champion" if kind == "regression" else "Directional accuracy of the champion")
            + " by ticker",
            "line",
            [Series(ticker, main.metric, main.labels).panel_metric(ticker) for ticker in tickers],
        ),
    ]
    panels = overview + [
        _panel(
            _id(team, ticker, key), f"{ticker}: {title}", plot_type, [s.panel_metric(ticker) for s in series]
        )
        for ticker in tickers
        for key, title, plot_type, series in ticker_panels(kind)
    ]
    return DashboardModel(tabs=[], panels=panels)
