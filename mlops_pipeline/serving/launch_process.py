"""The local-process launcher: the embedded default when no Docker daemon answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mlops_pipeline.serving.launch import Instance, free_port, model_args

SERVER_MODULE = "mlops_pipeline.serving.cli"
LOG_TAIL_BYTES = 8000


class ProcessLauncher:
    """Starts ``python -m mlops_pipeline.serving.cli`` detached from the caller, logging to a file.

    The server outlives the run that started it; it is stopped by its own PID, after checking that
    the PID still belongs to a model server: SIGTERM to it (it stops its worker processes), then
    SIGKILL to its whole process group (the server and its workers) when it has not stopped in time.
    """

    kind = "process"
    image = None
    placement = "local process"

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def _log_path(self, instance_id: str) -> Path:
        return self.log_dir / f"server-{instance_id}.log"

    def start(self, team: str, bundles: Mapping[str, Path], labels: Mapping[str, str]) -> Instance:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        command = [sys.executable, "-m", SERVER_MODULE, "--host", "127.0.0.1", "--port", str(port)]
        command += model_args(bundles)
        staging = self.log_dir / f"starting-{team}-{port}.log"
        with staging.open("wb") as log:
            child = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._children[child.pid] = child
        staging.rename(self._log_path(str(child.pid)))
        url = f"http://127.0.0.1:{port}"
        return Instance(str(child.pid), url, url)

    def running(self, instance_id: str) -> bool:
        pid = int(instance_id)
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        cmdline = Path(f"/proc/{pid}/cmdline")
        try:
            return SERVER_MODULE.encode() in cmdline.read_bytes()
        except OSError:
            return False

    def serves_team(self, instance_id: str, team: str) -> bool:
        """Whether the process is running and is a model server of ``team``'s models."""
        try:
            command = Path(f"/proc/{int(instance_id)}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return SERVER_MODULE.encode() in command and any(
            arg.startswith(f"{team}-".encode()) for arg in command
        )

    def logs(self, instance_id: str) -> str:
        path = self._log_path(instance_id)
        if not path.is_file():
            return ""
        data = path.read_bytes()
        return data[-LOG_TAIL_BYTES:].decode(errors="replace")

    def stop(self, instance_id: str, timeout_s: float = 15.0) -> None:
        if not self.running(instance_id):
            return
        pid = int(instance_id)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            child = self._children.get(pid)
            if (child.poll() is not None) if child is not None else not self.running(instance_id):
                return
            time.sleep(0.05)
        os.killpg(pid, signal.SIGKILL)  # a session leader: its group is the server and its workers
