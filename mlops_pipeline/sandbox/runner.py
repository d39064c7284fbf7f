"""Run the sandbox server in a background thread (tests and the platform's embedded default)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import uvicorn

from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.defaults import DEFAULT_HOST
from mlops_pipeline.sandbox.server import create_app

_STARTUP_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 10.0


class RunningSandbox(NamedTuple):
    """A sandbox serving at ``base_url`` (e.g. ``http://127.0.0.1:54321``) until ``stop()``."""

    base_url: str
    stop: Callable[[], None]


def start_sandbox_thread(config: SandboxConfig, host: str = DEFAULT_HOST, port: int = 0) -> RunningSandbox:
    """Start the sandbox on ``host:port`` (``port=0``: a free port) and wait until it serves."""
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    bound_port = listener.getsockname()[1]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=f"sandbox-{bound_port}", daemon=True
    )
    thread.start()

    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            listener.close()
            raise RuntimeError(f"sandbox server did not start on {host}:{bound_port}")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(_SHUTDOWN_TIMEOUT_S)
        listener.close()

    return RunningSandbox(base_url=f"http://{host}:{bound_port}", stop=stop)
