"""When ``mlops compete`` does the daemon's work, it iterates a backfill when something happened (a
new backfill, progress in the event log: an asset partition materialized or failed, a run that
ended) once that progress has settled, and otherwise only every few seconds: an iteration costs
CPU that the runs of a small machine need, and iterating in the middle of a run's materializations
splits the next stage into more runs."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
from dagster._time import get_current_datetime

from mlops_pipeline import replay
from mlops_pipeline.assets.sessions import nyse_sessions, session_ticker_partitions
from mlops_pipeline.partition_key_memo import partition_keys_listed_once


def test_the_driver_iterates_on_a_new_backfill_a_run_end_or_settled_progress_and_otherwise_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    iterated: list[str] = []

    def execute_backfill_jobs(context: Any, logger: logging.Logger, backfills: list[Any]) -> list[None]:
        iterated.append(backfills[0].backfill_id)
        return []

    now = [1000.0]
    monkeypatch.setattr(replay, "execute_backfill_jobs", execute_backfill_jobs)
    monkeypatch.setattr(replay.time, "monotonic", lambda: now[0])
    context = SimpleNamespace(instance=SimpleNamespace())
    driver = replay._Driver(context, logging.getLogger("test"), queue=None)  # type: ignore[arg-type]
    first, second = SimpleNamespace(backfill_id="first"), SimpleNamespace(backfill_id="second")
    mark = replay.EventLogProgress

    def poll(backfill: SimpleNamespace, progress: replay.EventLogProgress, after_s: float) -> bool:
        now[0] += after_s
        return driver.iterate(backfill, progress)  # type: ignore[arg-type]

    assert poll(first, mark(10, 5), 0)  # a new backfill: at once
    assert not poll(first, mark(10, 5), 1)  # nothing happened since

    # a run materializes its assets a moment apart: the driver waits until they settle
    assert not poll(first, mark(11, 5), 0.1)
    assert not poll(first, mark(12, 5), replay._SETTLE_S - 0.05)
    assert poll(first, mark(12, 5), replay._SETTLE_S + 0.01)
    assert iterated == ["first", "first"]

    # progress that never settles is acted on all the same
    asset, first_move = 12, now[0] + 0.1
    while now[0] + 0.1 < first_move + replay._SETTLE_MAX_S:
        asset += 1
        assert not poll(first, mark(asset, 5), 0.1)  # moves every 0.1 s, never settles
    asset += 1
    assert poll(first, mark(asset, 5), first_move + replay._SETTLE_MAX_S + 0.01 - now[0])

    # a run that ended: all of its assets are in, at once
    assert poll(first, mark(asset + 1, 6), 0.1)
    assert poll(second, mark(asset + 1, 6), 0)  # another backfill: at once
    assert iterated == ["first", "first", "first", "first", "second"]

    assert not poll(second, mark(asset + 1, 6), replay._QUIET_ITERATION_S - 0.1)
    assert poll(second, mark(asset + 1, 6), 0.1)  # nothing happened for a while
    assert iterated == ["first", "first", "first", "first", "second", "second"]


def test_an_iteration_lists_each_session_x_ticker_definition_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster keeps one definition's keys at a time; two teams' definitions checked in turn were
    listed again at every asset. Within the driver's iteration, each is listed once."""
    sessions = nyse_sessions(date(2024, 1, 2), date(2024, 6, 14))
    red, blue = session_ticker_partitions(sessions, ["MSFT"]), session_ticker_partitions(sessions, ["TSLA"])
    listings = Counter[str]()
    sessions_keys = dg.TimeWindowPartitionsDefinition.get_partition_keys

    def counted(self: dg.TimeWindowPartitionsDefinition, *args: Any, **kwargs: Any) -> Any:
        listings["sessions"] += 1
        return sessions_keys(self, *args, **kwargs)

    monkeypatch.setattr(dg.TimeWindowPartitionsDefinition, "get_partition_keys", counted)
    dagster_listing = dg.MultiPartitionsDefinition._get_partition_keys
    with dg.partition_loading_context(effective_dt=get_current_datetime()):
        alone = [d.subset_with_all_partitions() for d in (red, blue, red, blue)]
        assert listings["sessions"] == 4  # Dagster's own: each turn lists again
        with partition_keys_listed_once():
            memoized = [d.subset_with_all_partitions() for d in (red, blue, red, blue)]
        assert listings["sessions"] == 4 + 2
    assert [set(s.get_partition_keys()) for s in memoized] == [set(s.get_partition_keys()) for s in alone]
    assert len(memoized[0]) == len(sessions.get_partition_keys()) == 115  # sessions x one ticker
    assert dg.MultiPartitionsDefinition._get_partition_keys is dagster_listing  # put back

    iterated_with: list[object] = []

    def execute_backfill_jobs(context: Any, logger: logging.Logger, backfills: list[Any]) -> list[None]:
        iterated_with.append(dg.MultiPartitionsDefinition._get_partition_keys)
        return []

    monkeypatch.setattr(replay, "execute_backfill_jobs", execute_backfill_jobs)
    driver = replay._Driver(
        SimpleNamespace(instance=SimpleNamespace()), logging.getLogger("test"), queue=None
    )  # type: ignore[arg-type]
    assert driver.iterate(SimpleNamespace(backfill_id="b"), replay.EventLogProgress(1, 1))  # type: ignore[arg-type]
    assert iterated_with and iterated_with[0] is not dagster_listing
