"""The Dagster instance the CLI works on, opened so that processes starting at once share its creation.

Opening a fresh home creates its SQLite storage and stamps each database's schema version. Two
processes doing that at the same moment (two ``mlops run`` started together, or a run and the UI)
can stamp one database twice, which leaves the whole instance unreadable ("more than one head
present"). So opening takes an exclusive file lock in the home for as long as the creation takes:
the first process creates the storage, the others wait for it and open what it made.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

INSTANCE_LOCK = ".instance.lock"


@contextmanager
def open_instance(dagster_home: Path | None = None) -> Iterator[dg.DagsterInstance]:
    """The instance configured in ``dagster_home`` (default: ``DAGSTER_HOME``), closed on exit."""
    home = dagster_home or Path(os.environ["DAGSTER_HOME"])
    try:
        lock = (home / INSTANCE_LOCK).open("a")
    except OSError:  # a read-only home (a mounted instance config): nothing is created there
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            yield instance
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance
