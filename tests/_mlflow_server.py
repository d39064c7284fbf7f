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


class MlflowServer:
    """A tracking server (``--artifacts-destination`` a folder or ``s3://...``) that can be stopped
    and started again on the same port and store, as an operator restarts one. Its log is
    ``root/server.log``."""

    def __init__(self, root: Path, artifacts_destination: str, env: Mapping[str, str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        self._command += ["--port", str(self.port), "--workers", "1"]
        self._command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
        self._command += ["--artifacts-destination", artifacts_destination]
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def start(self) -> None:
        """Start the server and wait until it answers ``/health``."""
        env = {
            **os.environ,  # as it is when the server starts
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **self._extra_env,
        }
        with self.log_path.open("a") as log:
            self._process = subprocess.Popen(
                self._command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the whole process group (the server and its workers)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except ProcessLookupError:
            process.wait()
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_mlflow_server(
    root: Path, artifacts_destination: str, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start a tracking server, yield its URL, and stop the whole process group afterwards."""
    server = MlflowServer(root, artifacts_destination, env)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
