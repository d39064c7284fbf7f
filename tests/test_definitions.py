from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.defs_builder import build_definitions


def _keys(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


TEAM_ASSETS = (
    "training_dataset", "model", "champion", "serving", "predictions", "monitoring_report",
    "orders", "reconciliation", "backtest",
)  # fmt: skip


def test_two_default_teams(project: Path) -> None:
    defs = build_definitions(load_settings())
    expected = {"market/prices", "market/features", "leaderboard"}
    expected |= {f"{team}/{name}" for team in ("red", "blue") for name in TEAM_ASSETS}
    assert _keys(defs) == expected
    graph = defs.resolve_asset_graph()
    market = graph.get(dg.AssetKey(["market", "prices"])).partitions_def
    assert market is not None
    assert market.get_partition_keys() == ["AAPL", "AMZN", "MSFT", "NVDA", "TSLA"]  # union, each once
    red = graph.get(dg.AssetKey(["red", "training_dataset"])).partitions_def
    assert red is not None and red.get_partition_keys() == ["AAPL", "MSFT", "NVDA"]
    for team in ("red", "blue"):
        for stage in ("train", "serve", "predict", "trade"):
            job = defs.resolve_job_def(f"{team}_{stage}")
            assert job.tags["mlops/team"] == team
    per_ticker = defs.resolve_job_def("red_predict").partitions_def
    assert per_ticker is not None and per_ticker.get_partition_keys() == ["AAPL", "MSFT", "NVDA"]
    assert defs.resolve_job_def("red_trade").partitions_def is None
    checks = {key.name for key in graph.asset_check_keys}
    assert {"freshness", "trading_days", "point_in_time", "targets"} <= checks


def test_a_third_team_needs_only_a_file(project: Path) -> None:
    (project / "teams" / "green.yaml").write_text("tickers: [IBM, AAPL]\n", encoding="utf-8")
    defs = build_definitions(load_settings())
    assert {f"green/{name}" for name in TEAM_ASSETS} <= _keys(defs)
    market = defs.resolve_asset_graph().get(dg.AssetKey(["market", "prices"])).partitions_def
    assert market is not None and "IBM" in market.get_partition_keys()
    assert defs.resolve_job_def("green_train").tags["mlops/team"] == "green"


def test_a_broken_overlay_fails_the_whole_load(project: Path) -> None:
    (project / "teams" / "blue.yaml").write_text(
        "tickers: [AAPL]\nrisk: {max_position_pct: 7}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"teams/blue.yaml: risk.max_position_pct: Input should be less"):
        build_definitions(load_settings())


def test_code_location_loads_without_heavy_imports(project: Path, isolated_env: Path) -> None:
    probe = (
        "import sys, mlops_pipeline.definitions as d;"
        "heavy=[m for m in ('ludwig','torch','evidently','mlflow','transformers') if m in sys.modules];"
        "print(len(d.defs.resolve_asset_graph().get_all_asset_keys()), heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == f"{3 + 2 * len(TEAM_ASSETS)} []"


def test_dagster_cli_validates_the_code_location(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "mlops_pipeline.definitions"],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
