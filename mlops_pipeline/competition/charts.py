"""PNG charts drawn with matplotlib's Agg backend (no display, no pyplot global state)."""

from __future__ import annotations

import base64
import io

import pandas as pd


def _png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def equity_drawdown_png(daily: pd.DataFrame, title: str) -> bytes:
    """Equity (strategy vs buy-and-hold) above, drawdown below, from a backtest's daily frame."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(daily["date"], daily["equity"], label="strategy", color="tab:blue")
    top.plot(daily["date"], daily["benchmark_equity"], label="buy and hold", color="tab:gray")
    top.set_ylabel("equity")
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.fill_between(daily["date"], daily["drawdown"] * 100, 0, color="tab:red", alpha=0.4)
    bottom.plot(daily["date"], daily["benchmark_drawdown"] * 100, color="tab:gray", linewidth=0.8)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


def equity_curves_png(curves: dict[str, pd.Series], title: str) -> bytes:
    """One line per name; each series is indexed by date."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    for name, series in curves.items():
        axes.plot(series.index, series.to_numpy(), label=name)
    axes.set_title(title)
    axes.set_ylabel("equity")
    axes.grid(alpha=0.3)
    if curves:
        axes.legend(loc="upper left")
    figure.autofmt_xdate()
    return _png(figure)


def data_uri(png: bytes) -> str:
    """A ``data:`` URI that embeds the PNG in Markdown or HTML (self-contained pages)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
