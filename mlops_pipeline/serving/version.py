"""The serving code version: a content hash of this package's files (same on the host and in the image)."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def code_version() -> str:
    """``MLOPS_CODE_VERSION`` if set, else a short hash of every file of the serving package."""
    explicit = os.environ.get("MLOPS_CODE_VERSION")
    if explicit:
        return explicit
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.iterdir()):
        if path.is_file() and path.suffix in {".py", ".txt", ""}:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
