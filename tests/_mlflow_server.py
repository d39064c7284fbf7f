"""``mlflow server`` on 127.0.0.1 for tests: SQLite under ``root``, artifacts proxied by the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from _net import free_port

_START_TIMEOUT_S = 90.0


@contextmanager
def running_mlflow_server(
    root: Path, artifacts_destination: str, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start a tracking server (``--artifacts-destination`` a folder or ``s3://...``), yield its URL,
    and stop the whole process group afterwards. Its log is ``root/server.log``."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--artifacts-destination", artifacts_destination]
    server_env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **(env or {}),
    }
    log_path = root / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
