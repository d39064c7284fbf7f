"""The embedded instance's storage: Dagster's SQLite storage and local compute logs, safe and quick
for many processes.

:class:`EmbeddedSqliteStorage` is :class:`DagsterSqliteStorage` (the same files, tables and layout:
a home written by the plain SQLite storage is read as is) with these changes:

- **Pool slots hold across processes.** Dagster's SQL storage claims a pool slot in several
  statements (count the free slots, queue the step as assigned, take a free slot row) and relies
  on ``SELECT ... FOR UPDATE`` to keep two claimers apart. SQLite ignores ``FOR UPDATE``: two runs
  whose steps of the same pool start in the same few milliseconds both see the free slot and both
  take it, so a pool limited to one step ran two (measured: 3 of 10 trials of six processes
  claiming a fresh pool at once took two slots). Here every change to the pools' tables
  (initialize, claim, free, set, delete) is made under one exclusive file lock beside the index
  database: SQLite storage lives on one host, so an ``flock`` there orders every process using it.
- **A run's new database is a copy.** Each run has its own SQLite file, created by the first
  process that touches it (the run, the webserver, the daemon). Dagster creates each one anew and
  loads its ~90 alembic migration scripts twice for it: 80-90 ms a run, twenty runs a session.
  Here a process makes an empty run database once (the same tables, WAL, stamped at the same head
  revision) and each new run's file is a copy of it, linked into place whole (a few ms). A file
  that exists already is checked and completed as Dagster does, with the scripts loaded once.
- **One SQLAlchemy engine per database file and process** (an LRU of ``ENGINES_KEPT``), for the
  event log, run and schedule storages. Dagster creates an engine for every connection, so no
  statement is ever found in an engine's compiled cache: each query was built and compiled anew.
  Measured: a query of the index took 1.01 ms of CPU with an engine per connection, 0.39 ms with
  one kept.
- **Connections are kept between uses** (a pool of ``CONNECTIONS_KEPT`` per engine; more at once
  are opened and closed as before). Dagster opens and closes a connection for every statement
  group (``NullPool``): the close of a database's last connection checkpoints its write-ahead log
  and deletes it, the next open creates it again and reads the schema. Measured on a WAL
  database, a row per transaction: 1.2 ms (0.76-0.78 ms of CPU) that way, 0.25-0.31 ms
  (0.19-0.21 ms) through :func:`sqlite_engine`; a session writes a few thousand. A kept
  connection is used only by the process that opened it (a forked child opens its own, never
  closing its parent's) and only while its file is the one it opened (a deleted or replaced
  database, a wiped instance, gets a new one).
  Written events then stay in the write-ahead log until a checkpoint, so the UI's watch of a
  running run's database also looks at its log file, and a run process closes its connections
  when the run ends (a close checkpoints the log into the database file).
- **A database already at Dagster's schema head is not checked again** against the migration
  scripts: Dagster loads its ~90 alembic scripts to find the head for the runs, schedules and index
  databases each time an instance is made (65 ms of every run process's start); here they are
  loaded once per process (the run fork server loads them before it forks).
- **A step waiting for its pool tries again every** ``POOL_RECHECK_S`` (Dagster's default waits
  1 s, then longer, between tries: the next ticker's AlphaVantage step started up to a second
  after the previous one's ended).

:class:`EmbeddedComputeLogManager` is Dagster's local compute log manager (the same files under
``<home>/storage``, read by the UI as before) whose runs show their output where it went before
through a thread, not processes: Dagster starts a ``tail -F`` and a Python watcher for each of
stdout and stderr of every run, four processes a run (measured: twenty runs' captures took 1.1 s
and 0.6 s of CPU in those processes).

Configure them in ``dagster.yaml`` (the embedded instance does)::

    storage:
      custom:
        module: mlops_pipeline.instance_storage
        class: EmbeddedSqliteStorage
        config:
          base_dir: /absolute/path/of/the/dagster/home
    compute_logs:
      module: mlops_pipeline.instance_storage
      class: EmbeddedComputeLogManager
      config:
        base_dir: /absolute/path/of/the/dagster/home/storage
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import io
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, ParamSpec, Self, TypeVar

import sqlalchemy as db
import sqlalchemy.exc as db_exc
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.event_api import EventHandlerFn
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sql import get_alembic_config, safe_commit
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file
from dagster._utils.concurrency import ConcurrencyClaimStatus
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, QueuePool
from watchdog.events import FileSystemEvent
from watchdog.observers import Observer

POOL_LOCK_FILE = "pools.lock"
# How soon a step that found its pool full tries again. Dagster's default, made for a database
# server, is 1 s growing to 15 s; a claim here is a few milliseconds on a local file, and a step
# waiting behind a 0.3 s AlphaVantage request lost up to a second at every hand-over.
POOL_RECHECK_S = 0.2
# Another process creating the same run database at the same moment: wait and look again.
_CREATED_ELSEWHERE = re.compile(
    r"table \w+ already exists|database is locked|UNIQUE constraint failed: alembic_version"
)
_CREATE_ATTEMPTS = 10
# Engines kept per process: the index, runs and schedules databases and the run databases in use
# (a webserver reading older runs keeps the most recent ones).
ENGINES_KEPT = 64
# Connections kept open per engine: the event log's are used one at a time in a process (a lock),
# a webserver's threads may read the runs database a few at a time (more are opened for the use).
# Each holds three descriptors (the database, its log and shared memory): with ENGINES_KEPT, at
# most a few hundred per process.
CONNECTIONS_KEPT = 2
_ENGINES: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()  # engine -> its process
_INHERITED: list[Any] = []  # connections a forked process found in its parent's pools

P = ParamSpec("P")
R = TypeVar("R")


def _under_pool_lock(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        storage = args[0]
        assert isinstance(storage, EmbeddedSqliteEventLogStorage)
        with storage.pool_lock():
            return method(*args, **kwargs)

    return locked


@functools.lru_cache(maxsize=ENGINES_KEPT)
def sqlite_engine(conn_string: str, busy_timeout_s: float | None = None) -> Engine:
    """This process's engine for one SQLite database: its compiled statements and up to
    ``CONNECTIONS_KEPT`` connections kept, each checked out only by the process that opened it and
    only while the database file is still the one it opened."""
    connect_args: dict[str, Any] = {"check_same_thread": False}  # the pool hands it to any thread
    if busy_timeout_s is not None:
        connect_args["timeout"] = busy_timeout_s
    engine = db.create_engine(
        conn_string,
        poolclass=QueuePool,
        pool_size=CONNECTIONS_KEPT,
        max_overflow=-1,  # never wait for a connection: beyond the kept ones, open one for the use
        connect_args=connect_args,
    )
    database = engine.url.database or ""
    db.event.listen(engine, "connect", functools.partial(_remember_owner, database))
    db.event.listen(engine, "checkout", functools.partial(_check_owner, database))
    _ENGINES[engine] = os.getpid()
    return engine


def close_kept_connections() -> None:
    """Close the connections this process keeps (the last close of a database checkpoints its
    write-ahead log into the database file). Engines a forked process inherited are left alone:
    their connections are its parent's."""
    for engine, creator in list(_ENGINES.items()):
        if creator == os.getpid():
            engine.dispose()


atexit.register(close_kept_connections)


def _file_id(database: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(database)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _remember_owner(database: str, _connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["owner"] = (os.getpid(), _file_id(database))


def _check_owner(database: str, _connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """A kept connection opened by another process (this one's parent, before a fork) or to a file
    since deleted or replaced is not used: SQLAlchemy then opens a new one."""
    pid, file_id = record.info.get("owner", (None, None))
    if pid != os.getpid():
        # The parent's connection: set aside, never closed here. SQLite's locks are per process:
        # closing a descriptor of the file would drop the ones this process's own connection holds.
        _INHERITED.append(record.dbapi_connection)
        record.dbapi_connection = proxy.dbapi_connection = None
        raise db_exc.DisconnectionError("a connection of the parent process")
    if file_id != _file_id(database):
        raise db_exc.DisconnectionError(f"the database {database} was replaced")


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection, connection.begin():
        yield connection


def _create_run_tables(engine: Engine) -> None:
    """What Dagster does for a run's database: unless it is stamped already, create the event log
    tables, switch to WAL and stamp it with the head revision of Dagster's migration scripts."""
    scripts = _migration_scripts()
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(connection)
                if context.get_current_revision() is None:
                    SqlEventLogStorageMetadata.create_all(engine)
                    connection.execute(db.text("PRAGMA journal_mode=WAL;"))
                    context.stamp(scripts, "head")
                    safe_commit(connection)
            return
        except (db_exc.DatabaseError, sqlite3.DatabaseError) as exc:
            if attempt == _CREATE_ATTEMPTS - 1 or not _CREATED_ELSEWHERE.search(str(exc)):
                raise
            time.sleep(0.2)


@functools.cache
def _migration_scripts() -> ScriptDirectory:
    """Dagster's alembic scripts for its SQLite storages, loaded once per process."""
    scripts = ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))
    scripts.get_current_head()  # reads every script now, not on the first run's database
    return scripts


def _at_head(engine: Engine, *tables: str) -> bool:
    """Whether the database is stamped with the head of Dagster's migration scripts and has
    ``tables``: then there is nothing for Dagster's own checks to create, stamp or migrate."""
    if not os.path.exists(engine.url.database or ""):
        return False
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            present = set(db.inspect(connection).get_table_names()) if tables else set()
    except (db_exc.DatabaseError, sqlite3.DatabaseError):
        return False
    return revision == _migration_scripts().get_current_head() and present >= set(tables)


@functools.cache
def empty_run_database() -> bytes:
    """The bytes of a new run's database, as :func:`_create_run_tables` makes it (once per process:
    a process that forks runs makes it before it forks)."""
    with tempfile.TemporaryDirectory(prefix="mlops-run-db-") as scratch:
        path = Path(scratch) / "run.db"
        engine = db.create_engine(f"sqlite:///{path}", poolclass=NullPool)
        try:
            _create_run_tables(engine)
        finally:
            engine.dispose()
        return path.read_bytes()


def _place_new_file(path: str, content: bytes) -> bool:
    """Write ``content`` to ``path`` only if nothing is there: whole or not at all (False when
    another process got there first)."""
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.new"  # not *.db: never taken for a run
    try:
        Path(partial).write_bytes(content)
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        Path(partial).unlink(missing_ok=True)
    return True


class EmbeddedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log whose pool-slot changes are serialized by a file lock, whose
    new run databases are copies of an empty one and whose engines are kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        self._lock_path = os.path.join(self._base_dir, POOL_LOCK_FILE)
        self._held = threading.local()  # a method that calls another locked one keeps the lock

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = sqlite_engine(self.conn_string_for_shard(shard), SQLITE_BUSY_TIMEOUT_SECONDS)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as connection:
                yield connection

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """A run's new database is a copy of an empty one made once per process; an existing one is
        checked (and completed) as Dagster does. The index database is Dagster's to create."""
        if for_index_shard:
            if not _at_head(engine):
                super()._initdb(engine, for_index_shard=True)
            return
        path = engine.url.database
        if path and not os.path.exists(path) and _place_new_file(path, empty_run_database()):
            return
        _create_run_tables(engine)

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        """Dagster's watch of a run's events (the UI's live run log), on the run's write-ahead log
        as well as its database file."""
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _RunLogWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (watchdog, self._obs.schedule(watchdog, self._base_dir))

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
    _locked_claim = _under_pool_lock(SqliteEventLogStorage.claim_concurrency_slot)

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ) -> ConcurrencyClaimStatus:
        status = self._locked_claim(concurrency_key, run_id, step_key, priority)
        return status if status.is_claimed else status.with_sleep_interval(POOL_RECHECK_S)

    free_concurrency_slots_for_run = _under_pool_lock(SqliteEventLogStorage.free_concurrency_slots_for_run)
    free_concurrency_slot_for_step = _under_pool_lock(SqliteEventLogStorage.free_concurrency_slot_for_step)


class _RunLogWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's watchdog of a run's database that also sees writes to its write-ahead log: with the
    writer's connection kept, a run's events reach the database file only at a checkpoint."""

    def __init__(
        self, storage: SqliteEventLogStorage, run_id: str, callback: EventHandlerFn, cursor: str | None
    ) -> None:
        super().__init__(storage, run_id, callback, cursor)
        self._patterns = [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event: FileSystemEvent) -> None:
        del event
        self._process_log()


class EmbeddedSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage with its engine kept."""

    @classmethod
    def from_local(cls, base_dir: str, inst_data: ConfigurableClassData | None = None) -> Self:
        conn_string = create_db_conn_string(base_dir, "runs")
        if _at_head(sqlite_engine(conn_string), "runs", "instance_info"):
            return cls(conn_string, inst_data)
        return super().from_local(base_dir, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(sqlite_engine(self._conn_string)) as connection:
            yield connection


class EmbeddedSqliteScheduleStorage(SqliteScheduleStorage):
    """Dagster's SQLite schedule storage with its engine kept."""

    @classmethod
    def from_local(cls, base_dir: str, inst_data: ConfigurableClassData | None = None) -> Self:
        conn_string = create_db_conn_string(base_dir, "schedules")
        if _at_head(sqlite_engine(conn_string), "jobs"):
            return cls(conn_string, inst_data)
        return super().from_local(base_dir, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(sqlite_engine(self._conn_string)) as connection:
            yield connection


class EmbeddedSqliteStorage(DagsterSqliteStorage):
    """:class:`DagsterSqliteStorage` (same files under ``base_dir``) with the embedded event log,
    run and schedule storages."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = EmbeddedSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = EmbeddedSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = EmbeddedSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> Self:
        return cls.from_local(inst_data=inst_data, **config_value)


class EmbeddedComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs, mirrored to the run's own output by a thread."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with _mirrored_to_file(sys.stdout, out), _mirrored_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the UI: this capture is complete


@contextmanager
def _mirrored_to_file(stream: IO, path: str) -> Iterator[None]:
    """Everything written to ``stream``'s file descriptor (child processes' output too) goes to
    ``path``, and a thread copies it to where the stream went before, as it is written."""
    ensure_file(path)
    try:
        shown = os.dup(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):  # no descriptor: Dagster captures nothing
        with redirect_to_file(stream, path):
            yield
        return
    finished = threading.Event()

    def copy() -> None:
        with open(path, "rb") as written:
            while True:
                chunk = written.read(1 << 16)
                if chunk:
                    _write_all(shown, chunk)
                elif finished.is_set():
                    return
                else:
                    finished.wait(0.1)

    mirror = threading.Thread(target=copy, name=f"mirror {os.path.basename(path)}", daemon=True)
    mirror.start()
    try:
        with redirect_to_file(stream, path):
            yield
    finally:
        finished.set()
        mirror.join(timeout=30)
        os.close(shown)


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` whole; output nobody reads any more (a closed pipe) is dropped, not raised."""
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view) :]
