"""Opening the embedded (SQLite) MLflow store from runs that start together."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops_pipeline.model_registry import MlflowRegistry, _store_made

pytestmark = pytest.mark.unit


@contextmanager
def _lock_held_shared(database: Path) -> Iterator[None]:
    """The store's lock held shared, as by another process opening the store."""
    with (database.parent / f".{database.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield


def _open_in_thread(registry: MlflowRegistry) -> threading.Thread:
    thread = threading.Thread(target=lambda: registry.client, daemon=True)
    thread.start()
    return thread


def test_a_made_store_opens_while_another_process_opens_it(tmp_path: Path) -> None:
    database = tmp_path / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{database}"
    assert MlflowRegistry(uri).client.search_experiments()  # makes the store: the default experiment
    assert _store_made(database)

    with _lock_held_shared(database):
        opening = _open_in_thread(MlflowRegistry(uri))
        opening.join(timeout=60)
        assert not opening.is_alive(), "opening a made store waited for a reader"


def test_a_new_store_is_made_by_one_process_at_a_time(tmp_path: Path) -> None:
    database = tmp_path / "mlflow" / "mlflow.db"
    database.parent.mkdir()
    registry = MlflowRegistry(f"sqlite:///{database}")

    with _lock_held_shared(database):
        making = _open_in_thread(registry)
        making.join(timeout=2)
        assert making.is_alive(), "the store was made while another process held its lock"
        assert not _store_made(database)
    making.join(timeout=120)
    assert not making.is_alive()
    assert _store_made(database)
    assert registry.client.search_experiments()
