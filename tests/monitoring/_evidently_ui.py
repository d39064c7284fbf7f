"""`evidently ui` on 127.0.0.1 for the monitoring tests (started and stopped by its PID)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _net import free_port, stop_process, wait_for_http


@contextmanager
def evidently_ui(workspace: Path, secret: str | None = None) -> Iterator[str]:
    """The evidently UI serving ``workspace``; yields its base URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "evidently.cli", "ui", "--workspace", str(workspace),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    if secret:
        command += ["--secret", secret]
    workspace.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/version", timeout_s=120)
        yield url
    finally:
        stop_process(process)
