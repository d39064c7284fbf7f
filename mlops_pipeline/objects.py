"""What domain code needs of the object store: a small protocol, its errors and key helpers.

The Dagster resource (``resources/object_store.py``: a local folder or S3) implements
:class:`Objects`; domain rooms depend on this module only, so they never import Dagster. Keys are
``/``-separated relative paths; a store narrowed with :meth:`Objects.scoped` refuses any key that
escapes its prefix.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd


class ObjectStoreError(RuntimeError):
    """A store operation failed; the message names the key and the store."""


class ObjectNotFoundError(ObjectStoreError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Objects(Protocol):
    """Atomic, idempotent objects by key; ``put_*`` return the stored object's URI."""

    def uri(self, key: str) -> str: ...
    def put_bytes(self, key: str, data: bytes) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self, prefix: str = "") -> list[str]: ...
    def put_text(self, key: str, text: str) -> str: ...
    def get_text(self, key: str) -> str: ...
    def put_parquet(self, key: str, frame: pd.DataFrame, manifest: dict[str, Any] | None = None) -> str: ...
    def get_parquet(self, key: str) -> pd.DataFrame: ...
    def get_parquet_with_manifest(self, key: str) -> tuple[pd.DataFrame, dict[str, Any]]: ...
    def scoped(self, prefix: str) -> Objects: ...


def normalize_key(key: str) -> str:
    """Validate a relative object key and return it normalized (no ``..``, no leading ``/``)."""
    if not key or key.startswith("/") or "\\" in key:
        raise ObjectStoreError(f"invalid object key {key!r}: use a relative '/'-separated path")
    parts = key.rstrip("/").split("/")
    if any(part in {"..", ".", ""} for part in parts):
        raise ObjectStoreError(f"invalid object key {key!r}: empty, '.' and '..' segments are not allowed")
    return "/".join(parts)


def session_dates(store: Objects, prefix: str, suffix: str = ".parquet") -> list[date]:
    """The dates that name ``<prefix>/<YYYY-MM-DD><suffix>`` objects (one per session), oldest
    first; other names are ignored."""
    sessions = []
    for key in store.list_keys(f"{prefix.rstrip('/')}/"):
        name = key.rsplit("/", 1)[-1]
        if not name.endswith(suffix):
            continue
        try:
            sessions.append(date.fromisoformat(name.removesuffix(suffix)))
        except ValueError:
            continue
    return sorted(sessions)
