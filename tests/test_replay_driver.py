"""When ``mlops compete`` does the daemon's work, it iterates a backfill when something happened (a
new backfill, progress in the event log: an asset partition materialized or failed, a run that
ended) once that progress has settled, and otherwise only every few seconds: an iteration costs
CPU that the runs of a small machine need, and iterating in the middle of a run's materializations
splits the next stage into more runs."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from mlops_pipeline import replay


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
