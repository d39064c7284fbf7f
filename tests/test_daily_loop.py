"""The daily loop end to end on the embedded defaults, against a real sandbox server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import pytest

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.defs_builder import build_definitions
from mlops_pipeline.market.calendar import last_completed_trading_day, next_trading_day
from mlops_pipeline.orchestration import DailyRunError, plan_steps, replay, replay_days, run_daily
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread

AS_OF = date(2024, 3, 27)


@pytest.fixture
def sandbox_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sandbox = start_sandbox_thread(SandboxConfig(today=AS_OF))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
    try:
        yield sandbox.base_url
    finally:
        sandbox.stop()


@pytest.fixture
def small_project(project: Path) -> Path:
    (project / "teams" / "red.yaml").write_text("tickers: [AAPL, MSFT]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").write_text(
        "tickers: [AAPL, TSLA]\nmodel: {ludwig_config: direction_classifier.yaml}\n"
        "strategy: {name: direction_classifier}\n",
        encoding="utf-8",
    )
    return project


@pytest.fixture
def settings(small_project: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch) -> PlatformSettings:
    loaded = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(loaded.dagster_home_path))
    ensure_home(loaded)
    return loaded


def _requests(url: str) -> int:
    return httpx.get(f"{url}/_sandbox/stats", timeout=5).json()["query_requests"]


def _latest_metadata(key: list[str], partition: str) -> dict:
    instance = dg.DagsterInstance.get()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records
    assert records, f"no materialization of {key}[{partition}]"
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {name: value.value for name, value in materialization.metadata.items()}


MARKET = ("market",)


def test_plan_orders_stages_and_rejects_unknown_ones(settings: PlatformSettings) -> None:
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    steps = [(step.job, step.partition) for step in plan_steps(teams)]
    assert steps[:3] == [("market_daily", "AAPL"), ("market_daily", "MSFT"), ("market_daily", "TSLA")]
    assert steps[3:9] == [
        ("blue_train", "AAPL"), ("blue_train", "TSLA"), ("blue_serve", None),
        ("blue_predict", "AAPL"), ("blue_predict", "TSLA"), ("blue_trade", None),
    ]  # fmt: skip
    assert steps[-1] == ("rank_teams", None)
    with pytest.raises(DailyRunError, match="unknown stage"):
        plan_steps(teams, ("market", "deploy"))


def test_one_request_per_ticker_and_none_on_rerun(settings: PlatformSettings, sandbox_url: str) -> None:
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    report = run_daily(settings, teams, stages=MARKET)
    assert report.ok, report.runs
    assert report.as_of == AS_OF  # the sandbox's clock decides "today"
    assert [run.partition for run in report.runs] == ["AAPL", "MSFT", "TSLA"]
    assert _requests(sandbox_url) == 3  # AAPL is shared by both teams and fetched once
    assert _latest_metadata(["market", "prices"], "AAPL")["api_calls"] == 1

    rerun = run_daily(settings, teams, stages=MARKET)
    assert rerun.ok
    assert _requests(sandbox_url) == 3  # same-day rerun: no request at all
    assert _latest_metadata(["market", "prices"], "AAPL")["api_calls"] == 0

    prices = object_store_from_settings(settings).get_parquet("market/prices/AAPL.parquet")
    assert prices["date"].iloc[-1].date() == AS_OF and prices["date"].is_unique


def test_next_day_appends_one_row_with_one_request(settings: PlatformSettings, sandbox_url: str) -> None:
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path, only=["red"])
    run_daily(settings, teams, as_of=date(2024, 3, 26), stages=MARKET)
    before = _requests(sandbox_url)
    report = run_daily(settings, teams, as_of=date(2024, 3, 27), stages=MARKET)
    assert report.ok
    assert _requests(sandbox_url) - before == 2
    meta = _latest_metadata(["market", "prices"], "AAPL")
    assert meta["appended_rows"] == 1 and meta["last_date"] == "2024-03-27" and meta["revised_values"] == 0


def test_unknown_ticker_fails_alone_and_writes_nothing(
    settings: PlatformSettings, small_project: Path, sandbox_url: str
) -> None:
    (small_project / "teams" / "red.yaml").write_text("tickers: [MSFT, ZZZZ]\n", encoding="utf-8")
    (small_project / "teams" / "blue.yaml").unlink()
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    report = run_daily(settings, teams, stages=("market", "train"))
    by_key = {(run.job, run.partition): run for run in report.runs}
    assert by_key[("market_daily", "ZZZZ")].status == "failure"
    assert "Invalid API call" in by_key[("market_daily", "ZZZZ")].note
    assert by_key[("red_train", "ZZZZ")].status == "skipped"
    assert by_key[("market_daily", "MSFT")].status == "success"
    assert by_key[("red_train", "MSFT")].status == "success"
    store = object_store_from_settings(settings)
    assert not store.exists("market/prices/ZZZZ.parquet")
    assert not report.ok and report.failed_count == 2  # the failure and the skip it caused


def test_a_holiday_is_refused_before_any_run(settings: PlatformSettings, sandbox_url: str) -> None:
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    with pytest.raises(DailyRunError, match="2024-07-04 is not an NYSE trading day"):
        run_daily(settings, teams, as_of=date(2024, 7, 4))
    assert _requests(sandbox_url) == 0


def test_failed_market_checks_block_the_training_dataset(
    settings: PlatformSettings, small_project: Path
) -> None:
    (small_project / "teams" / "red.yaml").write_text("tickers: [AAPL]\n", encoding="utf-8")
    (small_project / "teams" / "blue.yaml").unlink()
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    assert run_daily(settings, teams, stages=MARKET).ok
    store = object_store_from_settings(settings)
    prices, manifest = store.get_parquet_with_manifest("market/prices/AAPL.parquet")
    store.put_parquet("market/prices/AAPL.parquet", prices.drop(index=len(prices) - 5), manifest)

    report = run_daily(settings, teams, stages=("market", "train"))
    by_key = {(run.job, run.partition): run for run in report.runs}
    assert by_key[("market_daily", "AAPL")].status == "failure"
    assert by_key[("market_daily", "AAPL")].note == "blocking check 'trading_days' failed"
    assert by_key[("red_train", "AAPL")].status == "skipped"

    # launched on its own (e.g. from the UI), the team's training still refuses the unchecked data
    defs = build_definitions(settings, teams)
    result = defs.resolve_job_def("red_train").execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key="AAPL", tags={"mlops/as_of": "2024-03-27"},
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "failed checks ['trading_days']: training data blocked" in str(failure.event_specific_data.error)


def test_replay_moves_through_sessions_and_is_idempotent(
    settings: PlatformSettings, sandbox_url: str
) -> None:
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path, only=["red"])
    reports = replay(settings, teams, date(2024, 3, 26), date(2024, 4, 1), stages=MARKET)
    assert [report.as_of for report in reports] == [
        date(2024, 3, 26),
        date(2024, 3, 27),
        date(2024, 3, 28),
        date(2024, 4, 1),
    ]  # Good Friday and the weekend skipped
    assert all(report.ok for report in reports)
    requests = _requests(sandbox_url)
    assert requests == 2 * 4  # two tickers, one request each per session
    again = replay(settings, teams, date(2024, 3, 26), date(2024, 4, 1), stages=MARKET)
    assert again == []  # every day is recorded as replayed: nothing runs again
    assert _requests(sandbox_url) == requests
    prices = object_store_from_settings(settings).get_parquet("market/prices/MSFT.parquet")
    assert prices["date"].iloc[-1].date() == date(2024, 4, 1) and prices["date"].is_unique


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2024, 3, 28), date(2024, 3, 26), "--to 2024-03-26 is before --from 2024-03-28"),
        (date(1999, 1, 4), date(1999, 1, 8), "before the sandbox's history, which starts 2000-01-03"),
        (date(2024, 3, 29), date(2024, 3, 31), "no NYSE trading day between 2024-03-29 and 2024-03-31"),
    ],
)
def test_replay_range_errors(settings: PlatformSettings, start: date, end: date, message: str) -> None:
    with pytest.raises(DailyRunError, match=message):
        replay_days(settings, start, end)


def test_a_replay_on_alphavantage_ends_by_the_last_completed_session(settings: PlatformSettings) -> None:
    live = settings.model_copy(update={"market_data": "alphavantage"})
    assert replay_days(live, date(2024, 3, 26), date(2024, 3, 28)) == [
        date(2024, 3, 26),
        date(2024, 3, 27),
        date(2024, 3, 28),
    ]
    latest = last_completed_trading_day()
    upcoming = next_trading_day(latest)
    with pytest.raises(DailyRunError, match=f"--to {upcoming} is after the last completed session {latest}"):
        replay_days(live, date(2024, 3, 26), upcoming)
    with pytest.raises(DailyRunError, match=f"{upcoming} is after the last completed session {latest}"):
        run_daily(live, load_teams(settings.teams_path, settings.ludwig_configs_path), as_of=upcoming)
