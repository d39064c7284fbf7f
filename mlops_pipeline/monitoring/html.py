"""The human-readable parts of a report page (summary header) and the per-team index page.

Everything is static HTML with inline CSS and escaped text: no script, no external resource. The
summary is inserted at the top of evidently's self-contained document, so one file holds both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape
from typing import Any

from mlops_pipeline.monitoring.results import CheckVerdict, DriftResult, PerformanceResult

STYLE = (
    "font-family:Helvetica,Arial,sans-serif;margin:16px;padding:16px;border:1px solid #ccc;"
    "border-radius:6px;background:#fafafa;color:#222"
)
TABLE = "border-collapse:collapse;margin:8px 0"
CELL = "border:1px solid #ccc;padding:3px 8px;text-align:left"
_BODY_TAG = re.compile(r"<body[^>]*>", re.IGNORECASE)


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    head = "".join(f'<th style="{CELL}">{escape(cell)}</th>' for cell in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="{CELL}">{escape(cell)}</td>' for cell in row) + "</tr>" for row in rows
    )
    return f'<table style="{TABLE}"><tr>{head}</tr>{body}</table>'


def _days(label: str, days: list[str]) -> str:
    if not days:
        return ""
    return f"<p><b>{escape(label)} ({len(days)}):</b> {escape(', '.join(days))}</p>"


def summary_section(
    title: str,
    facts: dict[str, str],
    drift: DriftResult,
    performance: PerformanceResult,
    verdicts: list[CheckVerdict],
    recommendation: str,
) -> str:
    """The summary block shown above the evidently report."""
    parts = [f'<section id="monitoring-summary" style="{STYLE}"><h2>{escape(title)}</h2>']
    parts.append(_table(["", ""], [[key, value] for key, value in facts.items()]))
    parts.append(
        _table(
            ["check", "result", "details"],
            [
                [
                    verdict.name,
                    "not evaluated" if not verdict.evaluated else ("passed" if verdict.passed else "FAILED"),
                    verdict.description,
                ]
                for verdict in verdicts
            ],
        )
    )
    parts.append(f"<p><b>Retraining:</b> {escape(recommendation)}</p>")
    parts.append("<h3>Data drift</h3>")
    if drift.features:
        parts.append(
            _table(
                ["feature", "test", "score", "threshold", "drift"],
                [
                    [
                        item.feature,
                        item.method,
                        _number(item.score),
                        _number(item.threshold),
                        "yes" if item.drifted else "no",
                    ]
                    for item in drift.features
                ],
            )
        )
    else:
        parts.append(f"<p>{escape(drift.note or 'not evaluated')}</p>")
    parts.append("<h3>Prediction performance (target-date closes)</h3>")
    if performance.evaluated:
        parts.append(
            _table(
                ["metric", "champion", "naive (tomorrow = today)"],
                [
                    ["MAE", _number(performance.mae), _number(performance.naive_mae)],
                    ["RMSE", _number(performance.rmse), _number(performance.naive_rmse)],
                    ["MAPE (%)", _number(performance.mape), _number(performance.naive_mape)],
                    [
                        "directional accuracy",
                        _number(performance.directional_accuracy),
                        _number(performance.naive_directional_accuracy),
                    ],
                    ["scored predictions", str(performance.n_predictions), str(performance.n_predictions)],
                ],
            )
        )
    else:
        parts.append(f"<p>{escape(performance.note or 'not evaluated')}</p>")
    parts.append(_days("Missing predictions", performance.missing_days))
    parts.append(_days("Awaiting the target close", performance.pending_days))
    parts.append(_days("Target date not a known session", performance.unmatched_days))
    parts.append("</section>")
    return "".join(parts)


def compose_page(title: str, summary: str, evidently_html: str | None) -> str:
    """The summary on top of evidently's document, or a page of its own when evidently did not run."""
    if evidently_html is not None:
        match = _BODY_TAG.search(evidently_html)
        if match is not None:
            return evidently_html[: match.end()] + summary + evidently_html[match.end() :]
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body>{summary}</body></html>"
    )


def index_page(team: str, entries: list[dict[str, Any]]) -> str:
    """Every report of the team by ticker and date (newest first), linked relative to the index."""
    by_ticker: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_ticker.setdefault(entry["ticker"], []).append(entry)
    sections = []
    for ticker in sorted(by_ticker):
        rows = []
        for entry in sorted(by_ticker[ticker], key=lambda item: item["date"], reverse=True):
            links = " ".join(
                f'<a href="{escape(path)}">{"report" if number == 0 else f"rerun {number}"}</a>'
                for number, path in enumerate(entry["paths"])
            )
            cells = [
                escape(entry["date"]),
                links,
                escape(_number(entry.get("drift_share"), 3)),
                escape(_number(entry.get("mae"))),
                escape(_number(entry.get("directional_accuracy"), 3)),
                escape(str(entry.get("status", "n/a"))),
            ]
            rows.append("<tr>" + "".join(f'<td style="{CELL}">{cell}</td>' for cell in cells) + "</tr>")
        header = "".join(
            f'<th style="{CELL}">{name}</th>'
            for name in ("date", "reports", "drift share", "MAE", "directional accuracy", "status")
        )
        sections.append(
            f'<h2>{escape(ticker)}</h2><table style="{TABLE}"><tr>{header}</tr>{"".join(rows)}</table>'
        )
    body = "".join(sections) or "<p>No reports yet.</p>"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Monitoring: {escape(team)}</title></head>'
        f'<body style="{STYLE}"><h1>Monitoring reports: team {escape(team)}</h1>{body}</body></html>'
    )
