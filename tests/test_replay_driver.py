"""When ``mlops compete`` does the daemon's work, it iterates a backfill when something happened (a new
backfill, a new event in the event log's index: an asset event or a run's status) and otherwise only
every few seconds: an iteration costs CPU that the runs of a small machine need."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from mlops_pipeline import replay


def test_the_driver_iterates_on_a_new_backfill_or_event_and_otherwise_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    iterated: list[str] = []

    def execute_backfill_jobs(context: Any, logger: logging.Logger, backfills: list[Any]) -> list[None]:
        iterated.append(backfills[0].backfill_id)
        return []

    latest_event = [10]
    now = [1000.0]
    monkeypatch.setattr(replay, "execute_backfill_jobs", execute_backfill_jobs)
    monkeypatch.setattr(replay.time, "monotonic", lambda: now[0])
    storage = SimpleNamespace(get_maximum_record_id=lambda: latest_event[0])
    context = SimpleNamespace(instance=SimpleNamespace(event_log_storage=storage))
    driver = replay._Driver(context, logging.getLogger("test"), queue=None)  # type: ignore[arg-type]
    first, second = SimpleNamespace(backfill_id="first"), SimpleNamespace(backfill_id="second")

    driver.iterate(first)  # type: ignore[arg-type]
    now[0] += 1
    driver.iterate(first)  # type: ignore[arg-type]
    assert iterated == ["first"]  # nothing happened since

    latest_event[0] = 11  # a materialization, or a run that finished
    driver.iterate(first)  # type: ignore[arg-type]
    driver.iterate(second)  # type: ignore[arg-type]
    assert iterated == ["first", "first", "second"]

    now[0] += replay._QUIET_ITERATION_S - 0.1
    driver.iterate(second)  # type: ignore[arg-type]
    assert iterated == ["first", "first", "second"]
    now[0] += 0.1
    driver.iterate(second)  # type: ignore[arg-type]
    assert iterated == ["first", "first", "second", "second"]
