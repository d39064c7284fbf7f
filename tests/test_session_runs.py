"""A session end to end on the embedded defaults, against a real sandbox server on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import pytest
from dagster._core.storage.tags import BACKFILL_ID_TAG

from mlops_pipeline.asset_freshness import latest_storage_id
from mlops_pipeline.config.home import ALPHAVANTAGE_POOL, ensure_home
from mlops_pipeline.config.platform import Platform, load_platform
from mlops_pipeline.config.settings import PlatformSettings, load_settings
from mlops_pipeline.defs_builder import build_definitions
from mlops_pipeline.market.calendar import last_completed_trading_day, next_trading_day
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.replay import ReplayError, replay
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.run_launcher import fail_orphaned_runs
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.session_runner import SessionRunError, plan_steps, run_session

pytestmark = pytest.mark.integration  # servers on 127.0.0.1

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


@pytest.fixture
def platform(settings: PlatformSettings) -> Platform:
    return load_platform(settings)


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


def test_the_sessions_end_at_the_sandbox_today(platform: Platform) -> None:
    assert platform.last_session == AS_OF  # the sandbox's configured today, never moved by a run
    assert platform.first_session == date(2020, 1, 2)


def test_plan_orders_stages_and_rejects_unknown_ones(platform: Platform) -> None:
    steps = [(step.job, step.partition) for step in plan_steps(platform, AS_OF, list(platform.teams))]
    day = "2024-03-27"
    assert steps[:3] == [("market_daily", f"{day}|{ticker}") for ticker in ("AAPL", "MSFT", "TSLA")]
    assert steps[3:9] == [
        ("blue_train", f"{day}|AAPL"), ("blue_train", f"{day}|TSLA"), ("blue_serve", day),
        ("blue_predict", f"{day}|AAPL"), ("blue_predict", f"{day}|TSLA"), ("blue_trade", day),
    ]  # fmt: skip
    assert steps[-1] == ("rank_teams", "2024-03-27")
    only_red = [step.job for step in plan_steps(platform, AS_OF, ["red"])]
    assert (
        "blue_train" not in only_red and only_red[-1] == "rank_teams"
    )  # the leaderboard still ranks everyone
    with pytest.raises(SessionRunError, match="unknown stage"):
        plan_steps(platform, AS_OF, ["red"], ("market", "deploy"))


def test_one_request_per_ticker_and_none_on_rerun(
    settings: PlatformSettings, platform: Platform, sandbox_url: str
) -> None:
    report = run_session(platform, AS_OF, stages=MARKET)
    assert report.ok, report.runs
    assert [run.partition for run in report.runs] == ["AAPL", "MSFT", "TSLA"]
    assert _requests(sandbox_url) == 3  # AAPL is shared by both teams and fetched once
    assert _latest_metadata(["market", "prices"], "2024-03-27|AAPL")["api_calls"] == 1

    runs = len(dg.DagsterInstance.get().get_runs())
    rerun = run_session(platform, AS_OF, stages=MARKET)
    assert rerun.ok
    assert {run.status for run in rerun.runs} == {"up to date"}
    assert len(dg.DagsterInstance.get().get_runs()) == runs  # nothing launched
    forced = run_session(platform, AS_OF, stages=MARKET, force=True)
    assert {run.status for run in forced.runs} == {"success"}
    assert _requests(sandbox_url) == 3  # same-session reruns: no request at all
    # ... and no second materialization, so nothing downstream runs again for it
    records = (
        dg.DagsterInstance.get()
        .fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["market", "prices"]), asset_partitions=["2024-03-27|AAPL"]
            ),
            limit=10,
        )
        .records
    )
    assert len(records) == 1

    prices = object_store_from_settings(settings).get_parquet(prices_key("AAPL", AS_OF))
    assert prices["date"].iloc[-1].date() == AS_OF and prices["date"].is_unique


def test_prices_a_killed_run_left_without_features_get_them_on_the_next_run(
    settings: PlatformSettings, platform: Platform, sandbox_url: str
) -> None:
    instance = dg.DagsterInstance.get()
    market = build_definitions(platform).resolve_job_def("market_daily")
    partition = f"{AS_OF}|MSFT"
    # what a run killed after the prices and before the features leaves
    killed = market.execute_in_process(
        instance=instance, partition_key=partition, asset_selection=[dg.AssetKey(["market", "prices"])]
    )
    assert killed.success and _requests(sandbox_url) == 1
    assert not _materialized(instance, ["market", "features"], partition)

    report = run_session(platform, AS_OF, ["red"], stages=MARKET)
    assert report.ok, report.runs
    assert _materialized(instance, ["market", "features"], partition)
    assert _latest_metadata(["market", "prices"], partition)["api_calls"] == 0  # the stored snapshot
    assert _requests(sandbox_url) == 2  # AAPL's only


def test_prices_a_backfill_asks_for_again_are_materialized_from_the_stored_snapshot(
    settings: PlatformSettings, platform: Platform, sandbox_url: str
) -> None:
    """A backfill over a complete session (``mlops compete --force``, a range launched in the UI)
    counts every targeted partition failed unless it is materialized: the unchanged snapshot is
    materialized again, without a request, and the features after it."""
    instance = dg.DagsterInstance.get()
    market = build_definitions(platform).resolve_job_def("market_daily")
    partition = f"{AS_OF}|MSFT"
    assert market.execute_in_process(instance=instance, partition_key=partition).success
    made = {
        key: latest_storage_id(instance, dg.AssetKey(["market", key]), partition)
        for key in ("prices", "features")
    }

    again = market.execute_in_process(
        instance=instance, partition_key=partition, tags={BACKFILL_ID_TAG: "abcdefgh"}
    )
    assert again.success
    for key, first in made.items():
        latest = latest_storage_id(instance, dg.AssetKey(["market", key]), partition)
        assert first is not None and latest is not None and latest > first, key
    assert _latest_metadata(["market", "prices"], partition)["api_calls"] == 0
    assert _requests(sandbox_url) == 1


def _materialized(instance: dg.DagsterInstance, key: list[str], partition: str) -> bool:
    return latest_storage_id(instance, dg.AssetKey(key), partition) is not None


def test_each_session_has_its_own_snapshot(
    settings: PlatformSettings, platform: Platform, sandbox_url: str
) -> None:
    run_session(platform, date(2024, 3, 26), ["red"], stages=MARKET)
    before = _requests(sandbox_url)
    report = run_session(platform, date(2024, 3, 27), ["red"], stages=MARKET)
    assert report.ok
    assert _requests(sandbox_url) - before == 2
    meta = _latest_metadata(["market", "prices"], "2024-03-27|AAPL")
    assert meta["appended_rows"] == 1 and meta["last_date"] == "2024-03-27" and meta["revised_values"] == 0

    store = object_store_from_settings(settings)
    earlier = store.get_parquet(prices_key("AAPL", date(2024, 3, 26)))
    assert earlier["date"].iloc[-1].date() == date(2024, 3, 26)  # the later session did not rewrite it
    # an older session run afterwards costs no request when its snapshot exists, and leaves later ones alone
    assert run_session(platform, date(2024, 3, 26), ["red"], stages=MARKET).ok
    assert _requests(sandbox_url) - before == 2
    assert store.get_parquet(prices_key("AAPL", AS_OF))["date"].iloc[-1].date() == AS_OF


def test_two_sessions_run_side_by_side_without_touching_each_other(
    settings: PlatformSettings, platform: Platform
) -> None:
    defs = build_definitions(platform)
    job = defs.resolve_job_def("market_daily")
    instance = dg.DagsterInstance.get()
    results = [
        job.execute_in_process(instance=instance, partition_key=f"{day}|MSFT", raise_on_error=False)
        for day in ("2024-03-27", "2024-03-25")  # the later session first
    ]
    assert all(result.success for result in results)
    store = object_store_from_settings(settings)
    for day in (date(2024, 3, 25), date(2024, 3, 27)):
        assert store.get_parquet(prices_key("MSFT", day))["date"].iloc[-1].date() == day


def test_unknown_ticker_fails_alone_and_writes_nothing(
    settings: PlatformSettings, small_project: Path, sandbox_url: str
) -> None:
    (small_project / "teams" / "red.yaml").write_text("tickers: [MSFT, ZZZZ]\n", encoding="utf-8")
    (small_project / "teams" / "blue.yaml").unlink()
    report = run_session(load_platform(settings), AS_OF, stages=("market", "train"))
    by_key = {(run.job, run.partition): run for run in report.runs}
    assert by_key[("market_daily", "ZZZZ")].status == "failure"
    assert "Invalid API call" in by_key[("market_daily", "ZZZZ")].note
    assert by_key[("red_train", "ZZZZ")].status == "skipped"
    assert by_key[("market_daily", "MSFT")].status == "success"
    assert by_key[("red_train", "MSFT")].status == "success"
    store = object_store_from_settings(settings)
    assert store.list_keys("market/prices/ZZZZ/") == []
    assert not report.ok and report.failed_count == 2  # the failure and the skip it caused


@pytest.mark.parametrize(
    ("day", "message"),
    [
        (date(2024, 7, 4), "2024-07-04 is not an NYSE session (July 4th)"),
        (date(2024, 3, 30), "2024-03-30 is not an NYSE session (a Saturday)"),
        (date(2024, 3, 26), None),  # a session: accepted (checked without running below)
        (date(2024, 3, 29), "2024-03-29 is not an NYSE session (Good Friday)"),
        (date(2024, 4, 1), "2024-04-01 is after the last completed session 2024-03-27"),
        (date(2019, 12, 31), "before the first session 2020-01-02"),
    ],
)
def test_a_date_that_is_no_session_is_refused_before_any_run(
    platform: Platform, sandbox_url: str, day: date, message: str | None
) -> None:
    if message is None:
        assert platform.check_session(day) == day
        return
    with pytest.raises(SessionRunError, match=re.escape(message)):
        run_session(platform, day)
    assert _requests(sandbox_url) == 0
    assert dg.DagsterInstance.get().get_runs() == []


def test_failed_market_checks_block_the_training_dataset(
    settings: PlatformSettings, small_project: Path
) -> None:
    (small_project / "teams" / "red.yaml").write_text("tickers: [AAPL]\n", encoding="utf-8")
    (small_project / "teams" / "blue.yaml").unlink()
    platform = load_platform(settings)
    assert run_session(platform, AS_OF, stages=MARKET).ok
    store = object_store_from_settings(settings)
    key = prices_key("AAPL", AS_OF)
    prices, manifest = store.get_parquet_with_manifest(key)
    store.put_parquet(key, prices.drop(index=len(prices) - 5), manifest)  # a session goes missing

    # the stored object changed behind Dagster's back: only a forced run looks at it again
    report = run_session(platform, AS_OF, stages=("market", "train"), force=True)
    by_key = {(run.job, run.partition): run for run in report.runs}
    assert by_key[("market_daily", "AAPL")].status == "failure"
    assert by_key[("market_daily", "AAPL")].note == "blocking check 'trading_days' failed"
    assert by_key[("red_train", "AAPL")].status == "skipped"

    # launched on its own (e.g. from the UI), the team's training still refuses the unchecked data
    defs = build_definitions(platform)
    result = defs.resolve_job_def("red_train").execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key="2024-03-27|AAPL", raise_on_error=False
    )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "failed checks ['trading_days']: training data blocked" in str(failure.event_specific_data.error)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2024, 3, 27), date(2024, 3, 26), "--to 2024-03-26 is before --from 2024-03-27"),
        (
            date(2019, 12, 2),
            date(2020, 1, 8),
            "outside the sessions: the valid range is 2020-01-02 to 2024-03-27",
        ),
        (
            date(2024, 3, 25),
            date(2024, 4, 2),
            "outside the sessions: the valid range is 2020-01-02 to 2024-03-27",
        ),
        (date(2024, 3, 23), date(2024, 3, 24), "no NYSE session between 2024-03-23 and 2024-03-24"),
    ],
)
def test_replay_range_errors(platform: Platform, start: date, end: date, message: str) -> None:
    with dg.DagsterInstance.get() as instance, pytest.raises(ReplayError, match=message):
        replay(instance, platform, start, end, ["red"])
    assert not instance.get_backfills()  # nothing submitted


def test_on_alphavantage_the_sessions_end_at_the_last_completed_session(settings: PlatformSettings) -> None:
    live = load_platform(settings.model_copy(update={"market_data": "alphavantage"}))
    latest = last_completed_trading_day()
    assert live.last_session == latest
    upcoming = next_trading_day(latest)
    with (
        dg.DagsterInstance.get() as instance,
        pytest.raises(
            ReplayError,
            match=f"to {upcoming} is outside the sessions: the valid range is 2020-01-02 to {latest}",
        ),
    ):
        replay(instance, live, date(2024, 3, 26), upcoming, ["red"])
    with pytest.raises(SessionRunError, match=f"{upcoming} is after the last completed session {latest}"):
        run_session(live, upcoming)


def test_runs_of_a_dead_process_are_marked_failed(settings: PlatformSettings, platform: Platform) -> None:
    import os
    import socket
    import subprocess
    import sys

    instance = dg.DagsterInstance.get()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    dead_pid = gone.stdout.strip()
    job = build_definitions(platform).resolve_job_def("rank_teams")
    tags = {"mlops/host": socket.gethostname()}
    orphan = instance.create_run_for_job(job, tags={**tags, "mlops/pid": dead_pid})
    alive = instance.create_run_for_job(job, tags={**tags, "mlops/pid": str(os.getpid())})
    for run in (orphan, alive):
        instance.handle_new_event(
            dg.EventLogEntry(
                error_info=None, level="INFO", user_message="", run_id=run.run_id, timestamp=0.0,
                dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job.name),
            )
        )  # fmt: skip
    # the dead run held the AlphaVantage pool's only slot: nothing could fetch until it is freed
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(ALPHAVANTAGE_POOL)
    storage.claim_concurrency_slot(ALPHAVANTAGE_POOL, orphan.run_id, "market__prices")
    assert storage.get_concurrency_info(ALPHAVANTAGE_POOL).active_run_ids == {orphan.run_id}
    assert fail_orphaned_runs(instance) == [orphan.run_id]
    assert storage.get_concurrency_info(ALPHAVANTAGE_POOL).active_slot_count == 0
    assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
