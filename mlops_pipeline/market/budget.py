"""A per-day request budget for a rate-limited API, shared by every process using the same file.

Usage is stored in SQLite, keyed by a hash of the API key (the key itself is never stored) and the
America/New_York date. :meth:`RequestBudget.acquire` reserves requests atomically (``BEGIN
IMMEDIATE``), so concurrent threads and processes never exceed the daily limit together, and it
spaces requests at least ``min_interval_s`` apart across processes by reserving time slots.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS request_usage (
    key_hash TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (key_hash, day)
);
CREATE TABLE IF NOT EXISTS request_pacing (
    key_hash TEXT PRIMARY KEY,
    next_slot REAL NOT NULL
);
"""
_LOCK_TIMEOUT_S = 30.0


class BudgetExhaustedError(RuntimeError):
    """The day's request budget is used up; no request was made."""


class RequestBudget:
    """Daily request budget and request pacing for one API key.

    ``daily_limit`` of ``None`` or 0 means unlimited (premium keys, the sandbox);
    ``min_interval_s`` of 0 disables pacing.
    """

    def __init__(
        self,
        path: Path | str,
        api_key: str,
        *,
        daily_limit: int | None = 25,
        min_interval_s: float = 1.0,
        service: str = "AlphaVantage",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.daily_limit = daily_limit or None
        self.min_interval_s = min_interval_s
        self.service = service
        self._key_hash = hashlib.sha256(f"{service}:{api_key}".encode()).hexdigest()
        self._clock = clock
        self._sleep = sleep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT_S)) as connection:
            connection.executescript(_SCHEMA)

    def today(self) -> date:
        """The budget day now: the date in America/New_York."""
        return datetime.fromtimestamp(self._clock(), EXCHANGE_TIMEZONE).date()

    def acquire(self, n: int = 1) -> None:
        """Reserve ``n`` requests for today, then wait for this caller's pacing slot.

        Raises :class:`BudgetExhaustedError` without reserving anything when fewer than ``n``
        requests are left today.
        """
        with self._transaction() as connection:
            now = self._clock()
            day = datetime.fromtimestamp(now, EXCHANGE_TIMEZONE).date()
            used = self._used(connection, day)
            if self.daily_limit is not None and used + n > self.daily_limit:
                raise BudgetExhaustedError(
                    f"{self.service} request budget exhausted: {used}/{self.daily_limit} used for {day}; "
                    + self.reset_note()
                )
            self._set_used(connection, day, used + n)
            slot = self._reserve_slot(connection, now)
        if slot > now:
            self._sleep(slot - now)

    def resets_at(self) -> datetime:
        """When the next budget day starts: the coming midnight in America/New_York."""
        tomorrow = self.today() + timedelta(days=1)
        return datetime.combine(tomorrow, clock_time(0), EXCHANGE_TIMEZONE)

    def reset_note(self) -> str:
        """``it resets at <time> (in N h M min)``, for the line that says a caller must wait."""
        reset = self.resets_at()
        left = max(int(reset.timestamp() - self._clock()), 0)
        return f"it resets at {reset:%Y-%m-%d %H:%M %Z} (in {left // 3600} h {left % 3600 // 60} min)"

    def mark_exhausted(self) -> None:
        """Record today's budget as used up (e.g. after the service reported its daily quota reached)."""
        if self.daily_limit is None:
            return
        with self._transaction() as connection:
            self._set_used(connection, self.today(), self.daily_limit)

    def used(self, day: date | None = None) -> int:
        """Requests reserved on ``day`` (default: today)."""
        with closing(sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT_S)) as connection:
            return self._used(connection, day or self.today())

    def remaining(self, day: date | None = None) -> int | None:
        """Requests left on ``day`` (default: today); ``None`` when unlimited."""
        if self.daily_limit is None:
            return None
        return max(self.daily_limit - self.used(day), 0)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT_S, isolation_level=None)) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _used(self, connection: sqlite3.Connection, day: date) -> int:
        row = connection.execute(
            "SELECT used FROM request_usage WHERE key_hash = ? AND day = ?", (self._key_hash, day.isoformat())
        ).fetchone()
        return int(row[0]) if row else 0

    def _set_used(self, connection: sqlite3.Connection, day: date, used: int) -> None:
        connection.execute(
            "INSERT INTO request_usage (key_hash, day, used) VALUES (?, ?, ?) "
            "ON CONFLICT (key_hash, day) DO UPDATE SET used = excluded.used",
            (self._key_hash, day.isoformat(), used),
        )

    def _reserve_slot(self, connection: sqlite3.Connection, now: float) -> float:
        """The earliest time this caller may send, at least ``min_interval_s`` after the previous one."""
        if self.min_interval_s <= 0:
            return now
        row = connection.execute(
            "SELECT next_slot FROM request_pacing WHERE key_hash = ?", (self._key_hash,)
        ).fetchone()
        slot = max(now, float(row[0])) if row else now
        connection.execute(
            "INSERT INTO request_pacing (key_hash, next_slot) VALUES (?, ?) "
            "ON CONFLICT (key_hash) DO UPDATE SET next_slot = excluded.next_slot",
            (self._key_hash, slot + self.min_interval_s),
        )
        return slot
