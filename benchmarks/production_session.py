"""A daily session on the production code paths next to the embedded sandbox mode.

Three modes run the same daily loop (the repository's teams, every stage) against one sandbox
server on 127.0.0.1, each with a fresh home:

- **sandbox**: the embedded default (``MLOPS_MARKET_DATA=sandbox``, ``MLOPS_BROKER=sandbox``);
- **premium**: ``MLOPS_MARKET_DATA=alphavantage`` with a premium key and ``MLOPS_BROKER=alpaca``,
  pointed at the sandbox through ``MLOPS_ALPHAVANTAGE_BASE_URL`` and ``MLOPS_ALPACA_URL``;
- **free**: the same with a free key (compact raw prices, 25 requests a day, one a second), first
  without any seeded history, then after ``mlops market import`` of the sandbox's CSV files.

For each mode: wall time of a first session (training every model) and of the next session
(no retraining), AlphaVantage requests per session (counted by the server), and for the free key
the sessions it needs before its first training. Writes benchmarks/results/production_session.json
and .md.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.importing import import_prices
from mlops_pipeline.resources.market_data import SANDBOX_API_KEY
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.alphavantage_api import render_daily_csv
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.session_runner import SessionReport, run_session

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
DAY_1, DAY_2 = date(2024, 3, 27), date(2024, 3, 28)
FREE_KEY = "bench-free"


def _team_keys(mode: str) -> dict[str, str]:
    """Each mode trades its own paper accounts."""
    return {
        "RED_ALPACA_API_KEY": f"bench-{mode}-red",
        "RED_ALPACA_SECRET_KEY": f"bench-{mode}-red-secret",
        "BLUE_ALPACA_API_KEY": f"bench-{mode}-blue",
        "BLUE_ALPACA_SECRET_KEY": f"bench-{mode}-blue-secret",
    }


def _served(url: str) -> int:
    return int(httpx.get(f"{url}/_sandbox/stats", timeout=5).json()["query_requests"])


def _session(day: date, url: str) -> tuple[SessionReport, float, int]:
    settings = load_settings()
    ensure_home(settings)
    platform = load_platform(settings)
    before = _served(url)
    started = time.perf_counter()
    report = run_session(platform, day)
    return report, time.perf_counter() - started, _served(url) - before


def _record_csv(folder: Path, symbols: list[str]) -> None:
    """AlphaVantage CSV files of the sandbox's market, as a premium key downloads them."""
    folder.mkdir(parents=True, exist_ok=True)
    market = SyntheticMarket()
    for symbol in symbols:
        csv = render_daily_csv(market.history(symbol, DAY_2), adjusted=True).body
        (folder / f"{symbol}.csv").write_text(csv, encoding="utf-8")


def _mode(name: str, root: Path, url: str, env: dict[str, str], seed: bool = False) -> dict[str, Any]:
    """One mode in a fresh interpreter, so that every mode pays the same imports and warm-up."""
    request = {"name": name, "root": str(root), "url": url, "env": env, "seed": seed}
    result = subprocess.run(
        [sys.executable, __file__, "--mode", json.dumps(request)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"mode {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _run_mode(name: str, root: Path, url: str, env: dict[str, str], seed: bool = False) -> dict[str, Any]:
    home = root / name
    # This interpreter runs this one mode only: its environment is the mode's.
    os.environ.update({"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **env})
    row: dict[str, Any] = {"mode": name}
    first, first_s, first_requests = _session(DAY_1, url)
    waiting = [run.note for run in first.runs if run.status == "waiting"]
    if seed:
        settings = load_settings()
        _record_csv(root / "recordings", load_platform(settings).tickers)
        import_prices(object_store_from_settings(settings), root / "recordings", until=DAY_1)
        first, first_s, more = _session(DAY_1, url)
        first_requests += more
    second, second_s, second_requests = _session(DAY_2, url)
    rerun, rerun_s, rerun_requests = _session(DAY_2, url)
    row.update(
        first_session_s=round(first_s, 1),
        first_session_ok=f"{first.total_count - first.failed_count}/{first.total_count}",
        next_session_s=round(second_s, 1),
        rerun_s=round(rerun_s, 1),
        requests_first=first_requests,
        requests_next=second_requests,
        requests_rerun=rerun_requests,
        failures=first.failed_count + second.failed_count + rerun.failed_count,
    )
    if waiting:
        found = re.search(r"training starts (on \S+|in \d+ sessions)", waiting[0])
        row["first_training_without_import"] = found.group(1) if found else waiting[0]
    return row


def main() -> None:
    sandbox = start_sandbox_thread(SandboxConfig(today=DAY_2, burst_per_second=1.0))
    url = sandbox.base_url
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-production-"))
    production = {
        "MLOPS_PROJECT_DIR": str(REPO),
        "MLOPS_MARKET_DATA": "alphavantage",
        "MLOPS_ALPHAVANTAGE_BASE_URL": url,
        "MLOPS_BROKER": "alpaca",
        "MLOPS_ALPACA_URL": url,
        "MLOPS_SERVING_LAUNCHER": "process",
    }
    try:
        rows = [
            _mode(
                "sandbox",
                root,
                url,
                {
                    "MLOPS_PROJECT_DIR": str(REPO),
                    "MLOPS_SANDBOX_URL": url,
                    "MLOPS_SERVING_LAUNCHER": "process",
                },
            ),
            _mode(
                "premium",
                root,
                url,
                {
                    **production,
                    **_team_keys("premium"),
                    "ALPHAVANTAGE_API_KEY": SANDBOX_API_KEY,
                    "MLOPS_ALPHAVANTAGE_PREMIUM": "true",
                },
            ),
            _mode(
                "free",
                root,
                url,
                {
                    **production,
                    **_team_keys("free"),
                    "ALPHAVANTAGE_API_KEY": FREE_KEY,
                    "MLOPS_ALPHAVANTAGE_PREMIUM": "false",
                },
                seed=True,
            ),
        ]
    finally:
        sandbox.stop()
        from mlops_pipeline.serving.deployment import stop_deployment
        from mlops_pipeline.serving.launch import Deployment

        for record in root.glob("**/teams/*/serving/deployment.json"):
            stop_deployment(Deployment.from_json(record.read_text()))
        shutil.rmtree(root, ignore_errors=True)
    write(rows)


def write(rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "days": [str(DAY_1), str(DAY_2)]}
    (RESULTS / "production_session.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    columns = [
        ("mode", "mode"),
        ("first_session_s", "first session (trains), s"),
        ("next_session_s", "next session, s"),
        ("rerun_s", "rerun, s"),
        ("requests_first", "requests, first"),
        ("requests_next", "requests, next"),
        ("requests_rerun", "requests, rerun"),
        ("failures", "failed runs"),
        ("first_training_without_import", "free key: first training without import"),
    ]
    lines = [
        "# A daily session: production code paths vs the embedded sandbox mode",
        "",
        f"Teams: the repository's (red and blue, 5 tickers). Sessions {DAY_1} and {DAY_2}. "
        f"{meta['machine']}, {meta['cpus']} CPUs. `make bench-production`.",
        "",
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in columns) + " |")
    (RESULTS / "production_session.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--mode":
        mode = json.loads(sys.argv[2])
        row = _run_mode(mode["name"], Path(mode["root"]), mode["url"], mode["env"], mode["seed"])
        print(json.dumps(row))
    else:
        main()
