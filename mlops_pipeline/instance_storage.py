"""The embedded instance's storage: Dagster's SQLite storage whose pool slots hold across processes.

Dagster's SQL storage claims a pool slot in several statements (count the free slots, queue the
step as assigned, take a free slot row) and relies on ``SELECT ... FOR UPDATE`` to keep two
claimers apart. SQLite ignores ``FOR UPDATE``: two runs whose steps of the same pool start in the
same few milliseconds both see the free slot and both take it, so a pool limited to one step ran
two (measured: 3 of 10 trials of six processes claiming a fresh pool at once took two slots).
:class:`PoolSafeSqliteStorage` is :class:`DagsterSqliteStorage` with every change to the pools'
tables (initialize, claim, free, set, delete) made under one exclusive file lock beside the index
database: SQLite storage lives on one host, so an ``flock`` there orders every process that uses it.
The tables, the files and their layout are Dagster's own: a home written by the plain SQLite
storage is read as is.

Configure it in ``dagster.yaml`` (the embedded instance does)::

    storage:
      custom:
        module: mlops_pipeline.instance_storage
        class: PoolSafeSqliteStorage
        config:
          base_dir: /absolute/path/of/the/dagster/home
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, Self, TypeVar

from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData

POOL_LOCK_FILE = "pools.lock"

P = ParamSpec("P")
R = TypeVar("R")


def _under_pool_lock(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        storage = args[0]
        assert isinstance(storage, PoolSafeSqliteEventLogStorage)
        with storage.pool_lock():
            return method(*args, **kwargs)

    return locked


class PoolSafeSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log whose pool-slot changes are serialized by a file lock."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        self._lock_path = os.path.join(self._base_dir, POOL_LOCK_FILE)
        self._held = threading.local()  # a method that calls another locked one keeps the lock

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def pool_lock(self) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        if depth:
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        with open(self._lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)

    initialize_concurrency_limit_to_default = _under_pool_lock(
        SqliteEventLogStorage.initialize_concurrency_limit_to_default
    )
    set_concurrency_slots = _under_pool_lock(SqliteEventLogStorage.set_concurrency_slots)
    delete_concurrency_limit = _under_pool_lock(SqliteEventLogStorage.delete_concurrency_limit)
    claim_concurrency_slot = _under_pool_lock(SqliteEventLogStorage.claim_concurrency_slot)
    free_concurrency_slots_for_run = _under_pool_lock(SqliteEventLogStorage.free_concurrency_slots_for_run)
    free_concurrency_slot_for_step = _under_pool_lock(SqliteEventLogStorage.free_concurrency_slot_for_step)


class PoolSafeSqliteStorage(DagsterSqliteStorage):
    """:class:`DagsterSqliteStorage` (same files under ``base_dir``) with
    :class:`PoolSafeSqliteEventLogStorage` as its event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PoolSafeSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> Self:
        return cls.from_local(inst_data=inst_data, **config_value)
