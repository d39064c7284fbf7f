"""A private PostgreSQL server on 127.0.0.1 for the whole session (Debian's postgresql package)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _net import free_port
from _postgres import Postgres


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the 'postgres' system user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # Outside pytest's 0700 temp tree: the 'postgres' user must be able to reach the data folder.
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data = root / "data"
    password_file = root / "password"
    password_file.write_text("mlops-test-password\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(password_file, "postgres")
    port = free_port()
    initdb = [
        _pg_bin("initdb"),
        "-D",
        str(data),
        "-U",
        "mlops",
        "--pwfile",
        str(password_file),
        "-A",
        "scram-sha-256",
    ]
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True, timeout=120)
    options = f"-h 127.0.0.1 -p {port} -k {root}"
    start = [_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"]
    subprocess.run(_as_postgres_user(start), check=True, capture_output=True, timeout=120)
    try:
        yield Postgres(host="127.0.0.1", port=port, user="mlops", password="mlops-test-password")
    finally:
        stop = [_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres_user(stop), check=False, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
