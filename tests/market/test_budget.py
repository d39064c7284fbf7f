from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from mlops_pipeline.market.budget import BudgetExhaustedError, RequestBudget
from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE

API_KEY = "key-4c1e7b"


class FakeTime:
    """A settable wall clock with a sleep that records and advances it."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def budget_at(path: Path, fake: FakeTime, **options: object) -> RequestBudget:
    return RequestBudget(path, API_KEY, clock=fake.clock, sleep=fake.sleep, **options)  # type: ignore[arg-type]


def acquire_all(path: Path, attempts: int, daily_limit: int) -> int:
    """Try ``attempts`` acquisitions; return how many succeeded."""
    budget = RequestBudget(path, API_KEY, daily_limit=daily_limit, min_interval_s=0)
    granted = 0
    for _ in range(attempts):
        try:
            budget.acquire()
        except BudgetExhaustedError:
            continue
        granted += 1
    return granted


def acquire_all_together(
    barrier: Barrier, results: Queue, path: Path, attempts: int, daily_limit: int
) -> None:
    """Process body: start with the other processes, then report ``acquire_all``'s count."""
    barrier.wait()
    results.put(acquire_all(path, attempts, daily_limit))


def test_exhausted_budget_raises_and_reserves_nothing(tmp_path: Path) -> None:
    fake = FakeTime(datetime(2026, 11, 20, 10, 0, tzinfo=EXCHANGE_TIMEZONE))
    budget = budget_at(tmp_path / "budget.sqlite", fake, daily_limit=3, min_interval_s=0)
    budget.acquire(2)

    with pytest.raises(BudgetExhaustedError, match="2/3 used for 2026-11-20"):
        budget.acquire(2)
    budget.acquire()
    with pytest.raises(BudgetExhaustedError, match="AlphaVantage request budget exhausted: 3/3 used"):
        budget.acquire()
    assert budget.used() == 3
    assert budget.remaining() == 0


def test_usage_persists_across_instances_and_is_per_key(tmp_path: Path) -> None:
    path = tmp_path / "budget.sqlite"
    RequestBudget(path, API_KEY, min_interval_s=0).acquire(5)

    assert RequestBudget(path, API_KEY, min_interval_s=0).used() == 5
    assert RequestBudget(path, "another-key", min_interval_s=0).used() == 0
    assert API_KEY.encode() not in path.read_bytes()


def test_budget_resets_at_midnight_new_york(tmp_path: Path) -> None:
    fake = FakeTime(datetime(2026, 11, 20, 23, 59, tzinfo=EXCHANGE_TIMEZONE))
    budget = budget_at(tmp_path / "budget.sqlite", fake, daily_limit=1, min_interval_s=0)
    budget.acquire()
    with pytest.raises(BudgetExhaustedError):
        budget.acquire()

    fake.now = datetime(2026, 11, 21, 0, 1, tzinfo=EXCHANGE_TIMEZONE).timestamp()
    budget.acquire()
    assert budget.used(date(2026, 11, 20)) == 1
    assert budget.used(date(2026, 11, 21)) == 1


def test_requests_are_spaced_by_the_minimum_interval(tmp_path: Path) -> None:
    fake = FakeTime(datetime(2026, 11, 20, 10, 0, tzinfo=EXCHANGE_TIMEZONE))
    path = tmp_path / "budget.sqlite"
    budget_at(path, fake, min_interval_s=1.0).acquire()
    budget_at(path, fake, min_interval_s=1.0).acquire()
    budget_at(path, fake, min_interval_s=1.0).acquire()
    fake.now += 10
    budget_at(path, fake, min_interval_s=1.0).acquire()

    assert fake.sleeps == [pytest.approx(1.0), pytest.approx(2.0)]


def test_pacing_can_be_disabled(tmp_path: Path) -> None:
    fake = FakeTime(datetime(2026, 11, 20, 10, 0, tzinfo=EXCHANGE_TIMEZONE))
    budget = budget_at(tmp_path / "budget.sqlite", fake, min_interval_s=0)
    budget.acquire()
    budget.acquire()

    assert fake.sleeps == []


@pytest.mark.parametrize("daily_limit", [None, 0])
def test_unlimited_budget(tmp_path: Path, daily_limit: int | None) -> None:
    budget = RequestBudget(tmp_path / "budget.sqlite", API_KEY, daily_limit=daily_limit, min_interval_s=0)
    budget.acquire(1000)

    assert budget.remaining() is None
    assert budget.used() == 1000


def test_parallel_threads_never_exceed_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "budget.sqlite"
    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = sum(pool.map(lambda _: acquire_all(path, 40, 100), range(8)))

    assert granted == 100
    assert RequestBudget(path, API_KEY).used() == 100


def test_parallel_processes_never_exceed_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "budget.sqlite"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=acquire_all_together, args=(barrier, results, path, 60, 150)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    granted = sum(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=60)

    assert granted == 150
    assert RequestBudget(path, API_KEY).used() == 150
