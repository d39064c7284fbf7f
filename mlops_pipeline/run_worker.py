"""What a run process forked by :class:`~mlops_pipeline.run_launcher.PreforkRunLauncher` runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Mapping

import dagster as dg
from dagster._cli.api import _execute_run_command_body
from dagster._core.instance.ref import InstanceRef
from dagster._utils.interrupts import capture_interrupts, setup_interrupt_handlers

from mlops_pipeline.instance_storage import close_kept_connections


def _own_event_loops() -> None:
    """evidently makes an event loop and its runner thread when it is imported, here in the fork
    server: a forked run sharing the server's loop (its epoll instance and self-pipe) with its
    siblings fails its first async call, so each run makes its own."""
    with contextlib.suppress(ImportError):
        from evidently.legacy.utils import sync

        sync._loop = asyncio.new_event_loop()
        sync._thr = threading.Thread(target=sync._loop.run_forever, name="Async Runner", daemon=True)


def execute_run(
    run_id: str, instance_ref: InstanceRef, environment: Mapping[str, str], directory: str, output: str
) -> None:
    """Execute one launched run to its end, as ``dagster api execute_run`` does, in the environment
    and working directory of the process that launched it (the fork server's date from its start).
    The process's own output (Dagster's console log; the steps' output is captured in the run's
    logs) goes to the file ``output``, not to the terminal of whoever launched the run."""
    from mlops_pipeline.run_preload import forget_edited_platform

    forget_edited_platform()
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(directory)
    with open(output, "ab", buffering=0) as log:
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    _own_event_loops()
    setup_interrupt_handlers()  # SIGTERM interrupts the run like SIGINT
    try:
        with capture_interrupts(), dg.DagsterInstance.from_ref(instance_ref) as instance:
            _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)
    finally:
        close_kept_connections()  # the process ends without its exit handlers
