"""Process faults for ``tests/faults``: ``mlops`` commands run as real process trees, stopped at a
chosen point of a session by watching the Dagster instance's event log (or the broker's order
book), then frozen and killed with SIGKILL, descendants included; and the checks that a crash
lost and duplicated nothing.

One team (red, MSFT, a tiny MLP, a long-flat strategy) on the embedded defaults: each ``mlops run``
starts the embedded sandbox and is killed with it; model servers are local processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from _net import free_port
from _processes import cmdline, descendants

from mlops_pipeline.instance import open_instance
from mlops_pipeline.processes import alive

SESSION = date(2024, 3, 27)  # the sandbox's today: the session whose orders go to the broker
NEXT_SESSION = date(2024, 3, 28)
TEAM, TICKER = "red", "MSFT"
SERVER_MODULE = b"mlops_pipeline.serving.cli"
PID_TAG = "mlops/pid"

TINY_MLP = """model_type: ecd
input_features:
  - {name: log_return_1, type: number}
  - {name: rsi_14, type: number}
output_features:
  - {name: target_next_return, type: number}
combiner: {type: concat, output_size: 8, num_fc_layers: 1}
trainer: {epochs: 3, batch_size: 256, learning_rate: 0.001}
"""


def write_fault_team(project: Path) -> None:
    """Red alone: MSFT, a tiny MLP (trained when there is none, then weekly), a gate any model
    passes, and a long-flat strategy that buys MSFT on SESSION (its prediction is a gain)."""
    for overlay in (project / "teams").glob("*.yaml"):
        if overlay.name != "base.yaml":
            overlay.unlink()
    (project / "ludwig_configs" / "tiny_mlp.yaml").write_text(TINY_MLP, encoding="utf-8")
    (project / "teams" / f"{TEAM}.yaml").write_text(
        f"tickers: [{TICKER}]\nmodel: {{ludwig_config: tiny_mlp.yaml, train_window_days: 300}}\n"
        "evaluation: {folds: 3, test_days: 20, purge_days: 30}\n"
        "promotion: {min_skill_vs_naive: -1000.0}\n"
        "strategy: {name: threshold_long_flat, params: {threshold: 0.0}}\n",
        encoding="utf-8",
    )


def platform_env(home: Path, project: Path, sandbox_port: int, today: date = SESSION) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MLOPS_", "ALPHAVANTAGE_", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"))
    }
    env.update(  # AWS_* come from the test's isolated environment (tests/conftest.py)
        MLOPS_HOME=str(home),
        MLOPS_PROJECT_DIR=str(project),
        DAGSTER_HOME=str(home / "dagster"),
        MLOPS_SANDBOX_TODAY=today.isoformat(),
        MLOPS_SANDBOX_PORT=str(sandbox_port),
        MLOPS_SERVING_LAUNCHER="process",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")])
        ),
    )
    return env


@dataclass
class MlopsProcess:
    """One ``mlops`` command as its own process group, its output in a file."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    # Started as a shell's background job is: SIGINT ignored, which the command inherits.
    sigint_ignored: bool = False
    process: subprocess.Popen[bytes] = field(init=False)
    wall_started: float = field(init=False)

    def __post_init__(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            command = [sys.executable, "-m", "mlops_pipeline.cli", *self.args]
            if self.sigint_ignored:
                ignoring = (
                    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                    "os.execv(sys.argv[1], sys.argv[1:])"
                )
                command = [sys.executable, "-c", ignoring, *command]
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.wall_started = time.time()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout_s: float = 600.0) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise AssertionError(
                f"mlops {' '.join(self.args)} ran over {timeout_s:.0f} s:\n{self.output()}"
            ) from None

    def kill_tree(self) -> list[int]:
        """kill -9 of the whole tree, frozen first so that nothing forks or finishes in between;
        returns the killed PIDs."""
        tree = [self.pid, *descendants(self.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        return tree

    def freeze(self) -> None:
        for pid in [self.pid, *descendants(self.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in [self.pid, *descendants(self.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def wait_until(
    what: str,
    condition: Callable[[], bool],
    run: MlopsProcess,
    timeout_s: float = 240.0,
    every_s: float = 0.1,
) -> None:
    """Poll ``condition`` until true; fail (naming ``what`` and the run's output) when the run ends
    first or the time is up."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if run.process.poll() is not None:
            raise AssertionError(f"mlops {' '.join(run.args)} ended before {what}:\n{run.output()}")
        if time.monotonic() > deadline:
            run.kill_tree()
            raise AssertionError(f"no {what} within {timeout_s:.0f} s:\n{run.output()}")
        time.sleep(every_s)


@contextlib.contextmanager
def instance_at(home: Path) -> Iterator[dg.DagsterInstance]:
    with open_instance(home / "dagster") as instance:
        yield instance


def runs_of(instance: dg.DagsterInstance, pid: int) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(pid)})))


def step_events(instance: dg.DagsterInstance, pid: int, event: dg.DagsterEventType) -> set[str]:
    """Step keys with ``event`` in the runs of process ``pid``."""
    return {
        record.step_key or ""
        for run in runs_of(instance, pid)
        for record in instance.all_logs(run.run_id, of_type=event)
    }


def instance_created(home: Path) -> bool:
    """Whether a run has created the instance's storage (polling must not race its creation)."""
    history = home / "dagster" / "history"
    return (history / "runs.db").is_file() and (history / "runs" / "index.db").is_file()


def step_event(
    home: Path, run: MlopsProcess, step_key: str, event: dg.DagsterEventType
) -> Callable[[], bool]:
    """Whether a run of ``run``'s process has logged ``event`` for ``step_key``."""

    def logged() -> bool:
        if not instance_created(home):
            return False
        with instance_at(home) as instance:
            return step_key in step_events(instance, run.pid, event)

    return logged


def model_server_below(run: MlopsProcess) -> Callable[[], bool]:
    """A model server started by ``run`` (a swap in progress)."""
    return lambda: any(SERVER_MODULE in cmdline(pid) for pid in descendants(run.pid))


def broker_db(home: Path) -> Path:
    return home / "sandbox" / "alpaca-broker.sqlite"


def broker_orders(home: Path) -> list[tuple[str, str, str, str, str]]:
    """``(api_key, client_order_id, symbol, side, submitted_day)`` of every order at the broker."""
    if not broker_db(home).is_file():
        return []
    connection = sqlite3.connect(f"file:{broker_db(home)}?mode=ro", uri=True, timeout=5)
    with contextlib.closing(connection) as db, contextlib.suppress(sqlite3.OperationalError):  # no table yet
        return db.execute(
            "SELECT api_key, client_order_id, symbol, side, submitted_day FROM orders ORDER BY seq"
        ).fetchall()
    return []


def order_at_broker(home: Path) -> Callable[[], bool]:
    return lambda: bool(broker_orders(home))


def assert_no_duplicate_orders(home: Path) -> int:
    """At most one order per account, symbol, side and day at the broker, and one journal row per
    broker order and per client order id; the number of broker orders."""
    import pandas as pd

    orders = broker_orders(home)
    intents = [(key, symbol, side, day) for key, _, symbol, side, day in orders]
    assert len(intents) == len(set(intents)), f"duplicate orders at the broker: {orders}"
    journal = home / "objects" / "teams" / TEAM / "journal" / "orders.parquet"
    if journal.is_file():
        frame = pd.read_parquet(journal)
        assert frame["order_id"].is_unique and frame["client_order_id"].is_unique, frame
        assert set(frame["client_order_id"]) <= {client_id for _, client_id, *_ in orders}
    return len(orders)


def assert_store_reads_back(home: Path) -> int:
    """Every stored object reads back whole (no partial or temporary file is left), every parquet's
    manifest names its own key's session and ticker, and every fingerprint matches its data; the
    number of objects checked."""
    from mlops_pipeline.resources.object_store import LocalObjectStore
    from mlops_pipeline.training.dataset import frame_fingerprint

    store = LocalObjectStore(root=str(home / "objects"))
    keys = store.list_keys("")
    assert not [key for key in keys if key.endswith((".partial", ".tmp"))], keys  # no half-written object
    fingerprints: dict[str, str] = {}
    for key in keys:
        if not key.endswith(".parquet"):
            store.get_bytes(key)
            continue
        frame, manifest = store.get_parquet_with_manifest(key)
        parts = key.removesuffix(".parquet").split("/")
        if "as_of" in manifest and parts[-1][:4].isdigit():
            assert manifest["as_of"] == parts[-1], (key, manifest)
        if "rows" in manifest:
            assert manifest["rows"] == len(frame), (key, manifest)
        if "ticker" in manifest:
            assert manifest["ticker"] in parts, (key, manifest)
        if "data_version" in manifest and key.startswith("market/"):
            assert manifest["data_version"] == frame_fingerprint(frame), key
            fingerprints[key] = manifest["data_version"]
        if "prices_version" in manifest:
            prices = key.replace("market/features/", "market/prices/")
            assert fingerprints.get(prices, manifest["prices_version"]) == manifest["prices_version"], key
    return len(keys)


def assert_no_run_left_started(home: Path) -> None:
    with instance_at(home) as instance:
        active = instance.get_runs(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
        )
        assert not active, [(run.job_name, run.status, run.tags.get(PID_TAG)) for run in active]


def stray_model_servers(home: Path) -> list[int]:
    """Model servers of ``home`` that are not its recorded deployment."""
    import json

    record = home / "objects" / "teams" / TEAM / "serving" / "deployment.json"
    live = json.loads(record.read_text())["instance_id"] if record.is_file() else None
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != live:
            line = cmdline(int(entry.name))
            if SERVER_MODULE in line and str(home).encode() in line and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@dataclass
class FaultHome:
    """One project (red alone) and its home on the embedded defaults (``settings`` overrides
    them); every ``mlops`` process it starts is killed, tree and all, at teardown, and its model
    servers are stopped."""

    project: Path
    home: Path
    sandbox_port: int
    processes: list[MlopsProcess] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def env(self, today: date) -> dict[str, str]:
        return {**platform_env(self.home, self.project, self.sandbox_port, today), **self.settings}

    def mlops(self, *args: str, log: str, today: date = SESSION) -> MlopsProcess:
        process = MlopsProcess(list(args), self.env(today), self.project, self.home.parent / "logs" / log)
        self.processes.append(process)
        return process

    def run_session(self, log: str, session: date = SESSION) -> MlopsProcess:
        """``mlops run`` of ``session``, the sandbox's today (the broker's last completed session)."""
        return self.mlops("run", "--date", session.isoformat(), log=log, today=session)

    def close(self) -> None:
        from mlops_pipeline.serving.deployment import stop_deployment
        from mlops_pipeline.serving.launch import Deployment

        for process in self.processes:
            if process.process.poll() is None:
                process.kill_tree()
        for record in self.home.glob("objects/teams/*/serving/deployment.json"):
            stop_deployment(Deployment.from_json(record.read_text()))
        for pid in stray_model_servers(self.home):
            os.kill(pid, signal.SIGKILL)


def fault_home_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultHome]:
    root = tmp_path_factory.mktemp("faults-proc")
    project = root / "project"
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "teams", project / "teams")
    shutil.copytree(repo / "ludwig_configs", project / "ludwig_configs")
    write_fault_team(project)
    home = FaultHome(project, root / "home", free_port())
    try:
        yield home
    finally:
        home.close()
