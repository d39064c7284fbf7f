"""Leaderboard ranking, missing inputs, renderings; reading the team stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_pipeline.competition.leaderboard import (
    NO_DATA,
    TeamStanding,
    chosen_rank_metric,
    leaderboard_frame,
    prediction_quality,
    render_html,
    render_markdown,
    render_terminal,
)
from mlops_pipeline.competition.team_inputs import read_standing
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.resources.object_store import LocalObjectStore
from mlops_pipeline.team_store import BACKTEST_DAILY_KEY, EQUITY_KEY


def _equity(values: list[float]) -> pd.DataFrame:
    dates = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"][: len(values)])
    return pd.DataFrame(
        {
            "date": dates,
            "equity": values,
            "cash": 0.0,
            "long_market_value": values,
            "return_since_start": [v / 100_000 - 1 for v in values],
        }
    )


def _monitoring(mae: float, naive: float, accuracy: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-03", "2024-01-04", "2024-01-04"]),
            "ticker": ["A", "A", "B"],
            "drift_share": 0.0,
            "drifted_features": 0,
            "mae": [9.9, mae, mae],
            "rmse": mae,
            "mape": 0.01,
            "directional_accuracy": [0.0, accuracy, accuracy],
            "naive_mae": [1.0, naive, naive],
            "n_predictions": 20,
            "status": "ok",
        }
    )


STANDINGS = [
    TeamStanding(
        "red", paper_equity=_equity([100_000, 101_000]), backtest={"total_return": 0.05, "sharpe": 0.5}
    ),
    TeamStanding(
        "blue",
        paper_equity=_equity([100_000, 102_000, 103_000]),
        backtest={
            "total_return": 0.01,
            "sharpe": 1.5,
            "leakage_suspected": True,
            "leakage_reasons": ["IC 0.2"],
        },
        monitoring=_monitoring(mae=0.8, naive=1.0, accuracy=0.6),
        champions={
            "AAPL": {"version": "1", "below_naive": True},
            "TSLA": {"version": "2", "below_naive": False},
        },
    ),
    TeamStanding("green"),  # nothing yet
]


def test_rank_by_return_by_default_and_missing_last() -> None:
    frame = leaderboard_frame(STANDINGS)
    assert frame["team"].tolist() == ["blue", "red", "green"]
    assert frame["rank"].tolist()[:2] == [1, 2] and pd.isna(frame["rank"].iloc[2])
    assert frame.loc[0, "paper_return"] == pytest.approx(0.03)
    assert frame.loc[0, "skill"] == pytest.approx(0.2)  # latest rows only: 1 - 1.6 / 2.0
    assert "probable leakage: IC 0.2" in frame.loc[0, "flags"]
    assert "below naive: AAPL (bootstrap champions)" in frame.loc[0, "flags"]  # TSLA's champion is skilled
    assert "below naive" not in frame.loc[1, "flags"]


def test_rank_by_other_metrics() -> None:
    assert leaderboard_frame(STANDINGS, "backtest_return")["team"].tolist()[:2] == ["red", "blue"]
    assert leaderboard_frame(STANDINGS, "sharpe")["team"].tolist()[:2] == ["blue", "red"]
    with pytest.raises(ValueError, match="unknown rank metric 'alpha'"):
        leaderboard_frame(STANDINGS, "alpha")


def test_overlays_choose_the_metric(project: Path) -> None:
    teams = load_teams(project / "teams", project / "ludwig_configs")
    assert chosen_rank_metric(teams) == "return"
    base = project / "teams/base.yaml"
    base.write_text(base.read_text().replace("rank_by: return", "rank_by: sharpe"))
    assert chosen_rank_metric(load_teams(project / "teams", project / "ludwig_configs")) == "sharpe"
    green = project / "teams/green.yaml"
    green.write_text("tickers: [IBM]\nleaderboard: {rank_by: sortino}\n")
    assert chosen_rank_metric(load_teams(project / "teams", project / "ludwig_configs")) == "sharpe"
    # a tie between teams falls back to the default (return)
    red = project / "teams/red.yaml"
    red.write_text(red.read_text() + "leaderboard: {rank_by: return}\n")  # 1 vote each
    assert chosen_rank_metric(load_teams(project / "teams", project / "ludwig_configs")) == "return"


def test_renderings_show_no_data_yet() -> None:
    frame = leaderboard_frame(STANDINGS)
    markdown = render_markdown(frame, "return")
    green_line = next(line for line in markdown.splitlines() if "| green |" in line)
    assert green_line.startswith("| - | green | no data yet | no data yet |")
    assert "paper return *" in markdown
    page = render_html(frame, STANDINGS, "return", datetime(2024, 1, 5, tzinfo=UTC))
    assert page.count("data:image/png;base64,") == 1  # paper curves; no backtest curve yet
    assert "<h2>Backtest equity</h2><p>no data yet</p>" in page
    assert "http" not in page  # self-contained
    table = render_terminal(frame, "return")
    assert table.row_count == 3


def test_prediction_quality_without_data() -> None:
    assert all(pd.isna(value) for value in prediction_quality(None).values())


def test_read_standing_from_team_store(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path)).scoped("teams/red")
    empty = read_standing(store, "red")
    assert empty.paper_equity is None and empty.backtest is None and empty.notes == []
    store.put_parquet(EQUITY_KEY, _equity([100_000, 100_500]))
    daily = pd.DataFrame({"date": pd.to_datetime(["2024-01-02"]), "equity": [1.0]})
    store.put_parquet(BACKTEST_DAILY_KEY, daily, {"summary": {"total_return": 0.1}})
    store.put_bytes("monitoring/summary.parquet", b"not parquet")
    standing = read_standing(store, "red")
    assert standing.backtest == {"total_return": 0.1}
    assert standing.backtest_equity is not None and standing.backtest_equity.iloc[0] == 1.0
    assert standing.monitoring is None
    assert standing.notes and standing.notes[0].startswith("unreadable monitoring/summary.parquet")
    row = leaderboard_frame([standing]).iloc[0]
    assert row["paper_equity"] == 100_500 and NO_DATA not in row["flags"]


def test_skill_is_undefined_for_direction_models_without_price_errors() -> None:
    import math

    import pandas as pd

    from mlops_pipeline.competition.leaderboard import prediction_quality

    summary = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-03-27", "2024-03-28"]),
            "ticker": ["TSLA", "TSLA"],
            "mae": [math.nan, math.nan],
            "naive_mae": [1.2, 1.3],
            "directional_accuracy": [0.5, 0.6],
        }
    )
    quality = prediction_quality(summary)
    assert math.isnan(quality["skill"]) and quality["directional_accuracy"] == 0.6
