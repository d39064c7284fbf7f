"""The leaderboard: per team paper equity and return, backtest statistics and prediction quality,
ranked by the metric the overlays choose; rendered as Markdown, a self-contained HTML page and a
terminal table. Missing inputs (a team that has not traded or been backtested yet) show as
``no data yet`` and rank last."""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from rich.table import Table

from mlops_pipeline.competition.charts import data_uri, equity_curves_png
from mlops_pipeline.config.teams import LeaderboardSpec, TeamConfig

NO_DATA = "no data yet"
DEFAULT_RANK_BY = LeaderboardSpec().rank_by

# rank metric -> (leaderboard column, higher is better)
RANK_COLUMNS: dict[str, tuple[str, bool]] = {
    "return": ("paper_return", True),
    "backtest_return": ("backtest_return", True),
    "sharpe": ("sharpe", True),
    "sortino": ("sortino", True),
    "max_drawdown": ("max_drawdown", False),
    "directional_accuracy": ("directional_accuracy", True),
    "skill": ("skill", True),
}

# column -> (header, format)
COLUMNS: dict[str, tuple[str, str]] = {
    "paper_equity": ("paper equity", "money"),
    "paper_return": ("paper return", "pct"),
    "paper_as_of": ("as of", "text"),
    "backtest_return": ("backtest return", "pct"),
    "annualized_return": ("annualized", "pct"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "max_drawdown": ("max DD", "pct"),
    "max_drawdown_duration_days": ("DD days", "int"),
    "hit_rate": ("hit rate", "pct"),
    "turnover": ("turnover", "pct"),
    "fees": ("fees", "money"),
    "benchmark_return": ("buy & hold", "pct"),
    "mae": ("MAE", "ratio4"),
    "directional_accuracy": ("dir. acc.", "pct"),
    "skill": ("skill vs naive", "pct"),
    "flags": ("flags", "text"),
}
TERMINAL_COLUMNS = (
    "paper_equity", "paper_return", "backtest_return", "sharpe", "max_drawdown", "hit_rate",
    "directional_accuracy", "skill", "flags",
)  # fmt: skip


@dataclass
class TeamStanding:
    """Everything the leaderboard knows about one team (``None``: that input does not exist yet)."""

    team: str
    paper_equity: pd.DataFrame | None = None  # journal/equity.parquet
    backtest: dict[str, Any] | None = None  # the backtest summary
    backtest_equity: pd.Series | None = None  # date-indexed backtest equity
    monitoring: pd.DataFrame | None = None  # monitoring/summary.parquet
    champions: dict[str, dict[str, Any]] = field(default_factory=dict)  # ticker -> the backtested champion
    notes: list[str] = field(default_factory=list)


def chosen_rank_metric(teams: dict[str, TeamConfig]) -> str:
    """The ``leaderboard.rank_by`` most teams set; ties go to the default (return), then by name."""
    votes = Counter(team.leaderboard.rank_by for team in teams.values())
    if not votes:
        return DEFAULT_RANK_BY
    best = max(votes.values())
    tied = sorted(metric for metric, count in votes.items() if count == best)
    return DEFAULT_RANK_BY if DEFAULT_RANK_BY in tied else tied[0]


def prediction_quality(summary: pd.DataFrame | None) -> dict[str, float]:
    """MAE, directional accuracy and skill vs the naive forecast (1 - MAE / naive MAE) from the
    latest monitoring row of every ticker."""
    empty = {"mae": math.nan, "directional_accuracy": math.nan, "skill": math.nan}
    if summary is None or summary.empty:
        return empty
    latest = summary.sort_values("date").groupby("ticker", as_index=False).tail(1)
    # Skill only over tickers with both errors (a direction model has no price error).
    priced = latest.dropna(subset=["mae", "naive_mae"])
    naive = float(priced["naive_mae"].sum())
    return {
        "mae": float(latest["mae"].mean()),
        "directional_accuracy": float(latest["directional_accuracy"].mean()),
        "skill": 1.0 - float(priced["mae"].sum()) / naive if naive > 0 else math.nan,
    }


def _row(standing: TeamStanding) -> dict[str, Any]:
    row: dict[str, Any] = {"team": standing.team}
    equity = standing.paper_equity
    if equity is not None and not equity.empty:
        last = equity.sort_values("date").iloc[-1]
        row.update(
            paper_equity=float(last["equity"]),
            paper_return=float(last["return_since_start"]),
            paper_as_of=str(pd.Timestamp(last["date"]).date()),
        )
    bt = standing.backtest or {}
    for key in (
        "annualized_return", "sharpe", "sortino", "max_drawdown", "max_drawdown_duration_days",
        "hit_rate", "turnover", "fees",
    ):  # fmt: skip
        row[key] = bt.get(key, math.nan)
    row["backtest_return"] = bt.get("total_return", math.nan)
    row["benchmark_return"] = (bt.get("benchmark") or {}).get("total_return", math.nan)
    row.update(prediction_quality(standing.monitoring))
    flags = ["probable leakage: " + "; ".join(bt["leakage_reasons"])] if bt.get("leakage_suspected") else []
    below_naive = sorted(ticker for ticker, info in standing.champions.items() if info.get("below_naive"))
    if below_naive:
        flags.append(f"below naive: {', '.join(below_naive)} (bootstrap champions)")
    row["flags"] = "; ".join(flags + standing.notes)
    return row


def leaderboard_frame(standings: list[TeamStanding], rank_by: str = DEFAULT_RANK_BY) -> pd.DataFrame:
    """One row per team, best first by ``rank_by``; teams without that metric rank last (no rank)."""
    if rank_by not in RANK_COLUMNS:
        raise ValueError(f"unknown rank metric {rank_by!r}; choose one of {', '.join(RANK_COLUMNS)}")
    frame = pd.DataFrame([_row(standing) for standing in standings], columns=["team", *COLUMNS])
    column, higher_is_better = RANK_COLUMNS[rank_by]
    frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.sort_values(
        [column, "team"], ascending=[not higher_is_better, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    ranked = frame[column].notna()
    frame.insert(0, "rank", pd.Series(range(1, len(frame) + 1), dtype="Int64").where(ranked))
    return frame


def format_cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "" if kind == "text" else NO_DATA
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "ratio4":
        return f"{value:.4f}"
    if kind == "int":
        return str(int(value))
    return str(value)


def _display_rows(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for record in frame.to_dict("records"):
        rank = record["rank"]
        cells = ["-" if rank is pd.NA or pd.isna(rank) else str(int(rank)), str(record["team"])]
        cells += [format_cell(record[column], COLUMNS[column][1]) for column in columns]
        rows.append(cells)
    return rows


def _headers(columns: tuple[str, ...], rank_by: str) -> list[str]:
    ranked_column = RANK_COLUMNS[rank_by][0]
    return ["rank", "team"] + [
        COLUMNS[column][0] + (" *" if column == ranked_column else "") for column in columns
    ]


def render_markdown(frame: pd.DataFrame, rank_by: str) -> str:
    """The full table as Markdown (Dagster metadata); ``*`` marks the ranking column."""
    columns = tuple(COLUMNS)
    headers = _headers(columns, rank_by)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _display_rows(frame, columns)]
    return f"Ranked by **{rank_by}** (* column).\n\n" + "\n".join(lines)


def render_terminal(frame: pd.DataFrame, rank_by: str) -> Table:
    table = Table(title=f"Leaderboard (ranked by {rank_by})")
    for header in _headers(TERMINAL_COLUMNS, rank_by):
        table.add_column(header)
    for cells in _display_rows(frame, TERMINAL_COLUMNS):
        table.add_row(*cells)
    return table


def render_html(
    frame: pd.DataFrame, standings: list[TeamStanding], rank_by: str, generated_at: datetime
) -> str:
    """A self-contained page: the table plus paper and backtest equity curves as inline PNGs."""
    columns = tuple(COLUMNS)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _headers(columns, rank_by))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in _display_rows(frame, columns)
    )
    charts = []
    paper = {
        s.team: s.paper_equity.sort_values("date").set_index("date")["equity"]
        for s in standings
        if s.paper_equity is not None and not s.paper_equity.empty
    }
    backtests = {s.team: s.backtest_equity for s in standings if s.backtest_equity is not None}
    for title, curves in (("Paper trading equity", paper), ("Backtest equity", backtests)):
        if curves:
            png = equity_curves_png(curves, title)
            charts.append(f'<h2>{title}</h2><img alt="{title}" src="{data_uri(png)}">')
        else:
            charts.append(f"<h2>{title}</h2><p>{NO_DATA}</p>")
    stamp = html.escape(generated_at.isoformat(timespec="seconds"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(2){{text-align:left}}</style>
</head><body>
<h1>Leaderboard</h1>
<p>Ranked by <b>{html.escape(rank_by)}</b> (* column). Generated {stamp}.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{"".join(charts)}
</body></html>
"""
