"""The embedded instance's run launcher: runs forked from a warm fork server, against a real
sandbox on 127.0.0.1 and the code location loaded as the UI loads it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml
from _processes import cmdline, descendants
from dagster._core.launcher import WorkerStatus

from mlops_pipeline.config.home import ALPHAVANTAGE_POOL, ensure_home
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.defs_builder import MARKET_JOB, build_definitions
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.processes import alive
from mlops_pipeline.replay import CODE_LOCATION, code_location_context, replay
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.run_launcher import PID_TAG, PreforkRunLauncher, fail_orphaned_runs
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread

pytestmark = pytest.mark.integration

AS_OF = date(2024, 3, 27)


@pytest.fixture
def instance(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    (project / "teams" / "red.yaml").write_text("tickers: [MSFT]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").unlink()
    sandbox = start_sandbox_thread(SandboxConfig(today=AS_OF))
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox.base_url)
    settings = load_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
    ensure_home(settings)
    try:
        with dg.DagsterInstance.get() as opened:
            yield opened
    finally:
        sandbox.stop()


def _launch(instance: dg.DagsterInstance, partition: str) -> dg.DagsterRun:
    """A market-data run of one session and ticker, launched by the instance's launcher."""
    job = build_definitions(load_platform(load_settings())).resolve_job_def(MARKET_JOB)
    with code_location_context(instance) as context:
        request = context.create_request_context()
        (repository,) = request.get_code_location(CODE_LOCATION).get_repositories().values()
        remote = repository.get_full_job(MARKET_JOB)
        run = instance.create_run_for_job(
            job,
            remote_job_origin=remote.get_remote_origin(),
            job_code_origin=remote.get_python_origin(),
            tags={"dagster/partition": partition},
        )
        instance.launch_run(run.run_id, request)
    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    return launched


def _wait(instance: dg.DagsterInstance, run_id: str, statuses: set[dg.DagsterRunStatus]) -> dg.DagsterRun:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.status in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {run.status}")


def _exits(pid: int) -> bool:
    """Whether process ``pid`` is gone within 30 s."""
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_a_launched_run_executes_in_its_own_process_with_the_launchers_settings(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(instance.run_launcher, PreforkRunLauncher)
    run = _launch(instance, f"{AS_OF}|MSFT")
    pid = int(run.tags[PID_TAG])
    assert pid != os.getpid()
    done = _wait(instance, run.run_id, {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE})
    assert done.status == dg.DagsterRunStatus.SUCCESS
    store = object_store_from_settings(load_settings())
    assert store.exists(prices_key("MSFT", AS_OF))  # in this test's home: the launcher's environment
    assert _exits(pid)

    # A second home in the same process: the next run sees it, not the fork server's first one.
    other_home = Path(os.environ["MLOPS_HOME"]).parent / "second-home"
    monkeypatch.setenv("MLOPS_HOME", str(other_home))
    monkeypatch.setenv("DAGSTER_HOME", str(other_home / "dagster"))
    ensure_home(load_settings())
    with dg.DagsterInstance.get() as second:
        again = _wait(second, _launch(second, f"{AS_OF}|MSFT").run_id, {dg.DagsterRunStatus.SUCCESS})
        assert int(again.tags[PID_TAG]) != pid
    assert object_store_from_settings(load_settings()).exists(prices_key("MSFT", AS_OF))


def test_a_killed_worker_is_seen_dead_and_its_run_failed(instance: dg.DagsterInstance) -> None:
    run = _launch(instance, f"{AS_OF}|MSFT")
    pid = int(run.tags[PID_TAG])
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    os.kill(pid, signal.SIGKILL)
    assert _exits(pid)
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED and f"pid {pid}" in health.msg
    assert run.run_id in fail_orphaned_runs(instance)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_replay_without_a_daemon_fails_the_run_of_a_killed_worker_and_ends(
    instance: dg.DagsterInstance,
) -> None:
    """No daemon's run monitoring sees a worker killed during `mlops compete`: the replay itself
    marks its run failed, and the session's backfill ends failed instead of waiting forever."""
    # The AlphaVantage pool's only slot is taken: the session's first run starts and waits in it.
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(ALPHAVANTAGE_POOL)
    assert storage.claim_concurrency_slot(ALPHAVANTAGE_POOL, "another-run", "its-step").is_claimed
    killed: list[int] = []

    def kill_the_first_started_worker() -> None:
        with dg.DagsterInstance.get() as watching:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and not killed:
                started = watching.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                for run in started:
                    if PID_TAG in run.tags:
                        os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)
                        killed.append(int(run.tags[PID_TAG]))
                        break
                time.sleep(0.2)

    killer = threading.Thread(target=kill_the_first_started_worker, daemon=True)
    killer.start()
    try:
        report = replay(instance, load_platform(load_settings()), AS_OF, AS_OF, ["red"])
    finally:
        storage.free_concurrency_slots_for_run("another-run")
    killer.join(timeout=10)
    assert len(killed) == 1
    (session,) = report.sessions
    assert session.status == "COMPLETED_FAILED" and session.materialized == 0
    assert [run.error for run in session.failed_runs] == [
        f"the process that ran it (pid {killed[0]}) is gone"
    ]


def test_terminate_cancels_a_started_run(instance: dg.DagsterInstance) -> None:
    # The AlphaVantage pool's only slot is taken: the run starts, and its prices step waits for it.
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(ALPHAVANTAGE_POOL)
    assert storage.claim_concurrency_slot(ALPHAVANTAGE_POOL, "another-run", "its-step").is_claimed
    try:
        run = _launch(instance, f"{AS_OF}|MSFT")
        _wait(instance, run.run_id, {dg.DagsterRunStatus.STARTED})
        assert instance.run_launcher.terminate(run.run_id)
        assert _wait(instance, run.run_id, {dg.DagsterRunStatus.CANCELING})
    finally:
        # A step waiting for a pool slot sees the interrupt once it stops waiting (Dagster's rule)
        storage.free_concurrency_slots_for_run("another-run")
    done = _wait(instance, run.run_id, {dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.SUCCESS})
    assert done.status == dg.DagsterRunStatus.CANCELED
    assert _exits(int(run.tags[PID_TAG]))
    assert not object_store_from_settings(load_settings()).exists(prices_key("MSFT", AS_OF))


_START_LAUNCHING = """
import sys, time
import dagster as dg
from dagster._daemon.daemon import BackfillDaemon
from dagster._daemon.types import DaemonHeartbeat
from mlops_pipeline.replay import start_launching
with dg.DagsterInstance.get() as instance:
    if sys.argv[1] == "with-daemon":
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), BackfillDaemon.daemon_type(), "d", None))
    start_launching(instance)
    print("started", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("daemon", ["no-daemon", "with-daemon"])
def test_a_replay_starts_the_fork_server_before_its_first_run_unless_a_daemon_launches(
    instance: dg.DagsterInstance, daemon: str
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _START_LAUNCHING, daemon], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "started"
        if daemon == "no-daemon":  # importing the run processes' libraries while nothing launched yet
            deadline = time.monotonic() + 15  # its process is spawned: seen once it has executed
            while not (fork_servers := _fork_servers_below(process.pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(fork_servers) == 1 and "mlops_pipeline.run_preload" in fork_servers[0]
        else:  # the daemon launches the runs: this process starts nothing
            time.sleep(1)
            assert _fork_servers_below(process.pid) == []
        assert instance.get_runs() == []
    finally:
        process.kill()
        process.wait(timeout=30)


def _fork_servers_below(pid: int) -> list[str]:
    below = [cmdline(child).replace(b"\0", b" ").decode() for child in descendants(pid)]
    return [line for line in below if "forkserver" in line]


def test_run_processes_compute_on_one_thread_each_and_never_collect_the_preloaded_objects() -> None:
    """Importing the fork server's preload fixes torch's (and OpenMP's) threads at one, which the
    runs it forks inherit (runs already run side by side), and freezes what it loaded, so that a
    run's garbage collections leave the shared libraries alone. Ludwig's metadata is parsed with
    libyaml there too (:func:`mlops_pipeline.ludwig_api.libyaml_safe_load`)."""
    env = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
    probe = (
        "import yaml; loaders = []; load = yaml.load\n"
        "def counted(stream, Loader):\n"
        "    loaders.append(Loader.__name__)\n"
        "    return load(stream, Loader)\n"
        "yaml.load = counted\n"
        "import gc, mlops_pipeline.run_preload, torch\n"
        "print(torch.get_num_threads(), gc.get_freeze_count(), len(gc.get_objects()), "
        "loaders.count('CSafeLoader'), yaml.safe_load.__module__)"
    )
    threads, frozen, collectable, libyaml_parsed, safe_load = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()[-5:]
    assert threads == "1"
    assert int(frozen) > 100_000  # the libraries' objects
    assert int(collectable) < int(frozen) / 20  # what a run's full collection still traverses
    if yaml.__with_libyaml__:
        assert int(libyaml_parsed) >= 10  # Ludwig's metadata files
    assert safe_load == "yaml"  # PyYAML's own function is back
