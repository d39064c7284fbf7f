"""Market-data ingestion: this platform vs the request pattern of the system it replaces.

Both sides run in one process against the same sandbox server on 127.0.0.1:

- **platform**: one shared history per ticker; a day's run asks for at most one compact window
  per ticker (none when the history is current) and computes every indicator locally.
- **per-pipeline baseline** (the replaced system's pattern): one pipeline per team x ticker, each
  fetching the full daily series and four indicator series (RSI, EMA, SMA, DEMA) from the API
  on every run. The sandbox serves no indicator endpoints, so those four requests are counted,
  not timed; the daily series is really fetched and parsed.

Writes benchmarks/results/market_ingest.json and .md.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import date
from pathlib import Path

import httpx

from mlops_pipeline.market.alphavantage import AlphaVantageClient
from mlops_pipeline.market.checks import check_price_history
from mlops_pipeline.market.features import build_features
from mlops_pipeline.market.ingest import ingest_prices
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread

RESULTS = Path(__file__).parent / "results"
TICKERS = ["AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "GOOGL", "META", "IBM", "ORCL", "INTC"]
TEAM_TICKERS = {"red": ["AAPL", "MSFT", "NVDA"], "blue": ["AAPL", "AMZN", "TSLA"]}
SEED_INDICATOR_CALLS = 4  # RSI(14), EMA(10), SMA(10), DEMA(10) per pipeline run
DAY_1, DAY_2 = date(2024, 3, 27), date(2024, 3, 28)


def _platform_day(client: AlphaVantageClient, stores: dict, day: date) -> tuple[float, int]:
    started = time.perf_counter()
    calls = 0
    for ticker, stored in list(stores.items()):
        result = ingest_prices(ticker, stored, True, day, True, client.daily)
        check_price_history(result.history, expected_last_date=day)
        build_features(result.history)
        stores[ticker] = result.history
        calls += result.api_calls
    return time.perf_counter() - started, calls


def _baseline_day(client: AlphaVantageClient) -> tuple[float, int]:
    started = time.perf_counter()
    calls = 0
    for tickers in TEAM_TICKERS.values():
        for ticker in tickers:
            series = client.daily(ticker, "full", False)
            calls += series.requests_used + SEED_INDICATOR_CALLS
    return time.perf_counter() - started, calls


def main() -> None:
    sandbox = start_sandbox_thread(SandboxConfig(today=DAY_1, market_start=date(2004, 1, 2)))
    try:
        client = AlphaVantageClient("sandbox-premium", base_url=sandbox.base_url, premium=True)
        stores: dict = dict.fromkeys(TICKERS)
        cold_s, cold_calls = _platform_day(client, stores, DAY_1)
        rows = sum(len(frame) for frame in stores.values())
        rerun_s, rerun_calls = _platform_day(client, stores, DAY_1)
        default_stores: dict = dict.fromkeys(sorted({t for ts in TEAM_TICKERS.values() for t in ts}))
        _platform_day(client, default_stores, DAY_1)
        httpx.put(f"{sandbox.base_url}/_sandbox/clock", json={"today": DAY_2.isoformat()}, timeout=5)
        next_s, next_calls = _platform_day(client, stores, DAY_2)
        _, default_calls = _platform_day(client, default_stores, DAY_2)
        base_s, base_calls = _baseline_day(client)
        client.close()
    finally:
        sandbox.stop()

    results = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "history": {"tickers": len(TICKERS), "years": 20, "rows": rows},
        "platform": {
            "cold_ingest_and_features_s": round(cold_s, 3),
            "cold_requests": cold_calls,
            "same_day_rerun_s": round(rerun_s, 3),
            "same_day_rerun_requests": rerun_calls,
            "next_day_s": round(next_s, 3),
            "next_day_requests": next_calls,
            "requests_per_daily_run_default_teams": default_calls,
        },
        "per_pipeline_baseline": {
            "pipelines": sum(len(t) for t in TEAM_TICKERS.values()),
            "daily_run_s_without_indicator_calls": round(base_s, 3),
            "requests_per_daily_run_default_teams": base_calls,
            "requests_per_rerun": base_calls,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "market_ingest.json").write_text(json.dumps(results, indent=2) + "\n")
    p, b = results["platform"], results["per_pipeline_baseline"]
    table = "\n".join(
        [
            "| measure | platform | per-pipeline baseline |",
            "|---|---|---|",
            f"| requests per daily run (default teams) | {p['requests_per_daily_run_default_teams']} "
            f"| {b['requests_per_daily_run_default_teams']} |",
            f"| requests on a same-day rerun | {p['same_day_rerun_requests']} | {b['requests_per_rerun']} |",
            f"| next-day run, 10 tickers (s) | {p['next_day_s']} | - |",
            "| cold ingest + features + checks, 10 tickers x 20 years (s) "
            f"| {p['cold_ingest_and_features_s']} | - |",
            f"| default teams' daily fetch, full series per pipeline (s) | - "
            f"| {b['daily_run_s_without_indicator_calls']} |",
        ]
    )
    (RESULTS / "market_ingest.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
