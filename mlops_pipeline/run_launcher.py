"""The embedded instance's run launcher: each run in its own process, forked from a warm one.

Dagster's ``DefaultRunLauncher`` asks the code server to start every run as a fresh Python process
(``spawn``), which imports Dagster, pandas and the code location again: about 5 s of CPU a run on
this platform before the run does anything, and a training or monitoring run imports Ludwig or
evidently on top (6 to 13 s). A replay of a month is hundreds of runs.

:class:`PreforkRunLauncher` starts a ``multiprocessing`` fork server once per launching process
(the daemon, the webserver, ``mlops compete``), which imports those libraries once
(:mod:`mlops_pipeline.run_preload`). Each run is a child forked from it that takes the launching
process's environment and working directory, imports the platform's code as it is on disk, loads
the code location (``mlops_pipeline.definitions``, built anew from the settings) and executes the
run as ``dagster api execute_run`` does. Each run is still its own process: it survives the process
that launched it, a crash kills only that run, and run monitoring sees a dead worker through its
pid. Termination interrupts the run (SIGINT), which Dagster turns into a canceled run.

Configure it in ``dagster.yaml`` (the embedded instance does)::

    run_launcher:
      module: mlops_pipeline.run_launcher
      class: PreforkRunLauncher
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import dagster as dg
from dagster import _check as check
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from mlops_pipeline.processes import alive

# The process that executes a run and its host (``mlops run`` tags its in-process runs the same way):
# a run whose process is gone is marked failed by run monitoring or by the next ``mlops`` run.
PID_TAG = "mlops/pid"
HOST_TAG = "mlops/host"
# Imported once by the fork server: the libraries, so that no run pays for them.
PRELOAD = ("mlops_pipeline.run_preload",)


@functools.cache
def _fork_context() -> multiprocessing.context.ForkServerContext:
    """This process's fork server context (the fork server itself starts with the first run)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


class PreforkRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a process forked from a fork server that has the code's imports done."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        del config_value
        return cls(inst_data=inst_data)

    def start_fork_server(self) -> None:
        """Start this process's fork server now instead of at the first launch: its imports then
        overlap what the launching process does before its first run (``mlops compete`` loads the
        code location and plans the backfills meanwhile). Does nothing when it already runs."""
        _fork_context()
        multiprocessing.forkserver.ensure_running()

    def launch_run(self, context: LaunchRunContext) -> None:
        from mlops_pipeline.run_worker import execute_run

        run = context.dagster_run
        check.not_none(run.job_code_origin, f"run {run.run_id} has no code origin to load")
        process = _fork_context().Process(
            target=execute_run,
            args=(
                run.run_id,
                self._instance.get_ref(),
                dict(os.environ),
                os.getcwd(),
                str(self._worker_log()),
            ),
            name=f"dagster-run-{run.run_id[:8]}",
            daemon=False,
        )
        process.start()
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(process.pid), HOST_TAG: socket.gethostname()})

    def _worker_log(self) -> Path:
        """Where the run processes' own output goes: ``logs/run-workers.log`` in the instance's home."""
        folder = Path(self._instance.root_directory) / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "run-workers.log"

    def _worker_pid(self, run: DagsterRun) -> int | None:
        pid = run.tags.get(PID_TAG)
        if pid is None or run.tags.get(HOST_TAG) != socket.gethostname():
            return None
        return int(pid)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = self._worker_pid(run)
        self._instance.report_run_canceling(run)
        if pid is None or not alive(pid):
            return False
        os.kill(pid, signal.SIGINT)  # Dagster stops the run at the next step boundary: CANCELED
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = self._worker_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run's worker process is not on this host")
        if alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's worker process (pid {pid}) is gone")


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs on this host whose process is gone (a run worker killed, or an ``mlops``
    process that executed its runs itself) and free the pool slots they held; their run ids."""
    host = socket.gethostname()
    orphans = []
    for run in instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    ):
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or pid is None or alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone")
        # Its pool slots (the AlphaVantage stream) are held until freed: nothing else could claim them.
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        orphans.append(run.run_id)
    return orphans
