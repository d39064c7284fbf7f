"""The deployed instance's storage: Dagster's PostgreSQL storage, with its connections kept.

Dagster's PostgreSQL storages open a new connection for every statement group (``NullPool``) in
every process but the webserver: the daemon, the code server and each run. On the compose stack a
session opened about 33 connections a second (3,526 in its first 107 s), each a TCP connection, a
SCRAM-SHA-256 exchange and a backend forked by the server: 6.7 ms of CPU (2.7 ms in the client,
4.1 ms in the server, measured on PostgreSQL 15) against 0.02 ms for a statement on a connection
kept open.

:class:`PooledPostgresStorage` is :class:`DagsterPostgresStorage` (the same tables, configuration
and migrations) whose run, event log and schedule storages share one engine per database and
process that keeps up to ``CONNECTIONS_KEPT`` connections between uses. More at once are opened
for the use and closed, so nothing ever waits for a connection. A kept connection is checked
before each use (a server restart costs a reconnect, not a failed query), replaced after
``RECYCLE_S``, and never used by a forked child (it opens its own; the parent's stay the parent's).
The webserver replaces the engines with pools of its own as it starts (Dagster's, with the statement
timeout). With an ``auth_provider`` (tokens instead of a password) Dagster's engines are kept.

Configure it in ``dagster.yaml`` (deploy/dagster/ does)::

    storage:
      custom:
        module: mlops_pipeline.postgres_storage
        class: PooledPostgresStorage
        config:
          postgres_db: {hostname: ..., username: ..., password: ..., db_name: ...}
"""

from __future__ import annotations

import os
from typing import Any, Self

import sqlalchemy as db
from dagster._core.storage.config import PostgresStorageConfig
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

# Per process and database: a run writes its events from one thread; the daemon's threads and the
# code server's requests use a few at once.
CONNECTIONS_KEPT = 4
RECYCLE_S = 1800
_ENGINES: dict[str, Engine] = {}


def pooled_engine(postgres_url: str) -> Engine:
    """This process's engine for ``postgres_url``, keeping up to ``CONNECTIONS_KEPT`` connections."""
    engine = _ENGINES.get(postgres_url)
    if engine is None:  # two threads may both make one: the first stored is kept (none connected yet)
        engine = _ENGINES.setdefault(
            postgres_url,
            db.create_engine(
                postgres_url,
                isolation_level="AUTOCOMMIT",  # as Dagster's own engines
                poolclass=QueuePool,
                pool_size=CONNECTIONS_KEPT,
                max_overflow=-1,  # never wait for a connection: beyond the kept ones, open one for the use
                pool_pre_ping=True,
                pool_recycle=RECYCLE_S,
            ),
        )
    return engine


def _forget_parent_connections() -> None:
    """In a forked child: new pools, the parent's connections left open for the parent."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


class PooledPostgresStorage(DagsterPostgresStorage):
    """:class:`DagsterPostgresStorage` whose storages keep their connections (one engine per
    database and process)."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        if token_provider is None:
            engine = pooled_engine(postgres_url)
            for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
                storage._engine.dispose()  # Dagster's NullPool engine: holds no connection
                storage._engine = engine

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> Self:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
