"""One evaluation of the ``session_automation`` sensor: the platform's conditions next to Dagster's
stock ones, on the shipped teams, in one run.

The daemon evaluates the sensor every ``MLOPS_AUTOMATION_INTERVAL_S`` seconds (30 by default) for
as long as it runs, whether a session is under way or not. Both designs are the platform's own
definitions (the shipped ``teams/``, sessions since 2020-01-02, the last on 2024-06-14):

- stock: every per-ticker stage on Dagster's ``AutomationCondition.eager()``, and a team's
  session x ticker assets on the market features by Dagster's default identity mapping;
- platform: ``PER_TICKER_STAGE`` (eager, its state kept for the latest session only) and
  ``features_dep`` (mapped dimension by dimension where the team's tickers are not the market's).

Each design replays the same session on an ephemeral instance: ticks with nothing new, then the
market data of every ticker, then each stage's materializations as its runs would report them,
with a tick after each step. Both must request the same partitions at every tick (checked); the
table shows the CPU time of a tick (median and slowest, the first tick aside), and the size of the
cursor the daemon stores after each tick.

Writes benchmarks/results/automation_tick.json and .md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from unittest import mock
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from mlops_pipeline.assets import market, monitoring, serving, team  # noqa: E402
from mlops_pipeline.config.platform import load_platform  # noqa: E402
from mlops_pipeline.config.settings import load_settings  # noqa: E402
from mlops_pipeline.defs_builder import build_definitions  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SESSION = "2024-06-14"
EVENING = datetime(2024, 6, 14, 18, 0, tzinfo=ZoneInfo("America/New_York"))
IDLE_TICKS = 5
# The stages of a session, in order: what each stage's runs materialize (per ticker or per team).
PER_TICKER = {
    "market": ["market/prices"],
    "features": ["market/features"],
    "models": ["{team}/training_dataset", "{team}/model", "{team}/champion"],
    "predictions": ["{team}/predictions", "{team}/monitoring_report"],
}
PER_TEAM = {
    "serving": ["{team}/serving"],
    "orders": ["{team}/orders"],
    "reconciliation": ["{team}/reconciliation", "{team}/backtest"],
}
STEPS = ["market", "features", "models", "serving", "predictions", "orders", "reconciliation"]


@contextmanager
def stock_conditions() -> Iterator[None]:
    """The definitions built with Dagster's eager() and its default identity mapping."""
    eager = dg.AutomationCondition.eager()
    with ExitStack() as patches:
        for module in (market, team, serving, monitoring):
            patches.enter_context(mock.patch.object(module, "PER_TICKER_STAGE", eager))
        for module in (team, serving, monitoring):
            patches.enter_context(mock.patch.object(module, "features_dep", lambda *_: market.FEATURES))
        yield


def _session(defs: dg.Definitions, teams: dict[str, list[str]]) -> dict[str, object]:
    instance = dg.DagsterInstance.ephemeral()
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    cursor = None
    ticks: list[dict[str, object]] = []

    def tick(label: str) -> None:
        nonlocal cursor
        started = time.process_time()
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVENING, cursor=cursor
        )
        cpu_s = time.process_time() - started
        cursor = result.cursor
        requested = {
            key.to_user_string(): sorted(str(partition) for partition in result.get_requested_partitions(key))
            for key in keys
        }
        ticks.append(
            {
                "after": label,
                "cpu_s": cpu_s,
                "cursor_bytes": len(dg.serialize_value(cursor)),
                "requested": {name: partitions for name, partitions in requested.items() if partitions},
            }
        )

    def materialize(names: list[str], partitions: list[str]) -> None:
        for name in names:
            for partition in partitions:
                event = dg.AssetMaterialization(dg.AssetKey(name.split("/")), partition=partition)
                instance.report_runless_asset_event(event)

    every_ticker = sorted({ticker for tickers in teams.values() for ticker in tickers})
    for index in range(IDLE_TICKS):
        tick(f"idle {index + 1}")
    for step in STEPS:
        if step in ("market", "features"):
            materialize(PER_TICKER[step], [f"{SESSION}|{ticker}" for ticker in every_ticker])
        for name, tickers in teams.items():
            if step in PER_TICKER and step not in ("market", "features"):
                names = [pattern.format(team=name) for pattern in PER_TICKER[step]]
                materialize(names, [f"{SESSION}|{ticker}" for ticker in tickers])
            if step in PER_TEAM:
                materialize([pattern.format(team=name) for pattern in PER_TEAM[step]], [SESSION])
        tick(step)
    materialize(["leaderboard"], [SESSION])
    tick("leaderboard")
    return {"ticks": ticks}


def _measure(
    design: Callable[[], AbstractContextManager[None]],
) -> tuple[dict[str, object], dict[str, list[str]]]:
    with design():
        built = load_platform(load_settings())
        defs = build_definitions(built)
    teams = {name: list(config.tickers) for name, config in built.teams.items()}
    return _session(defs, teams), teams


def main() -> None:
    warnings.filterwarnings("ignore")
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-automation-"))
    try:
        project = work / "project"
        for folder in ("teams", "ludwig_configs"):
            shutil.copytree(REPO / folder, project / folder)
        os.environ.update(
            MLOPS_PROJECT_DIR=str(project),
            MLOPS_HOME=str(work / "home"),
            MLOPS_SANDBOX_TODAY=SESSION,
            DAGSTER_HOME=str(work / "dagster"),
        )
        os.environ.pop("MLOPS_SANDBOX_URL", None)
        (work / "dagster").mkdir()
        designs = {"stock": stock_conditions, "platform": nullcontext}
        measured = {}
        teams: dict[str, list[str]] = {}
        for name, design in designs.items():
            measured[name], teams = _measure(design)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    stock_ticks, platform_ticks = measured["stock"]["ticks"], measured["platform"]["ticks"]
    for ours, theirs in zip(platform_ticks, stock_ticks, strict=True):
        if ours["requested"] != theirs["requested"]:
            raise SystemExit(
                f"the designs differ after {ours['after']}: {ours['requested']} != {theirs['requested']}"
            )
    rows = []
    for name, result in measured.items():
        steady = [tick["cpu_s"] for tick in result["ticks"][1:]]
        rows.append(
            {
                "design": name,
                "first_tick_cpu_s": result["ticks"][0]["cpu_s"],
                "median_tick_cpu_s": statistics.median(steady),
                "slowest_tick_cpu_s": max(steady),
                "largest_cursor_kib": max(tick["cursor_bytes"] for tick in result["ticks"]) / 1024,
                "ticks": [
                    {key: tick[key] for key in ("after", "cpu_s", "cursor_bytes")} for tick in result["ticks"]
                ],
            }
        )
    stock, ours = rows
    result_doc = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "teams": teams,
        "sessions": f"2020-01-02..{SESSION}",
        "same_requests_every_tick": True,
        "requests": [{"after": tick["after"], "requested": tick["requested"]} for tick in platform_ticks],
        "median_ratio": ours["median_tick_cpu_s"] / stock["median_tick_cpu_s"],
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "automation_tick.json").write_text(json.dumps(result_doc, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# One evaluation of the automation sensor",
        "",
        f"Shipped teams ({', '.join(f'{name}: {len(tickers)} tickers' for name, tickers in teams.items())}), "
        f"sessions 2020-01-02..{SESSION}; one session replayed ({len(platform_ticks)} ticks: "
        f"{IDLE_TICKS} with nothing new, then one after each stage). Both designs requested the same "
        "partitions at every tick. CPU seconds of the evaluating process.",
        "",
        "| design | first tick s | median tick s | slowest tick s | largest cursor KiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['design']} | {row['first_tick_cpu_s']:.2f} | {row['median_tick_cpu_s']:.2f} | "
            f"{row['slowest_tick_cpu_s']:.2f} | {row['largest_cursor_kib']:.0f} |"
        )
    lines += ["", f"Median tick: platform / stock = {result_doc['median_ratio']:.2f}."]
    (RESULTS / "automation_tick.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
