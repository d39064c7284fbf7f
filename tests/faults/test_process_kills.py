"""kill -9 of `mlops run`'s whole process tree at each point of a session, the model server killed
between deployment and predictions, and the same session launched twice at once.

To stay cheap the kills are chained on one home, from nothing to a completed session: each run is
killed at the next point, so every run first recovers from the previous kill (the dead run's runs
marked failed, its step done again without a duplicate), and the last run completes. After every
kill: no process of the tree survives, every stored object reads back with a manifest that agrees
with its data, and neither the broker nor the journal holds a duplicate order. The concurrent
launch then runs the next session on the same home (one training in the whole module).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from _process_faults import (
    NEXT_SESSION,
    SESSION,
    TEAM,
    FaultHome,
    MlopsProcess,
    alive,
    assert_no_duplicate_orders,
    assert_no_run_left_started,
    assert_store_reads_back,
    broker_orders,
    fault_home_fixture,
    instance_at,
    model_server_below,
    order_at_broker,
    runs_of,
    step_event,
    stray_model_servers,
    wait_until,
)

pytestmark = pytest.mark.integration

fault_home = pytest.fixture(scope="module")(fault_home_fixture)

Trigger = Callable[[FaultHome, MlopsProcess], Callable[[], bool]]


def _at_step(step_key: str) -> Trigger:
    return lambda home, run: step_event(home.home, run, step_key, dg.DagsterEventType.STEP_START)


# point -> (what stops the run there, the step the next run must complete to be past it)
KILL_POINTS: list[tuple[str, Trigger, str]] = [
    ("market ingest", _at_step("market__prices"), "market__features"),
    ("training", _at_step(f"{TEAM}__model"), f"{TEAM}__champion"),
    ("serving swap", lambda home, run: model_server_below(run), f"{TEAM}__serving"),
    ("predictions", _at_step(f"{TEAM}__predictions"), f"{TEAM}__predictions"),
    ("order placement", lambda home, run: order_at_broker(home.home), f"{TEAM}__orders"),
    ("reconciliation", _at_step(f"{TEAM}__reconciliation"), f"{TEAM}__reconciliation"),
]


def _passed_after(home: FaultHome, run: MlopsProcess, step_key: str) -> float | None:
    """Seconds from the start of ``run`` until ``step_key`` succeeded in it."""
    with instance_at(home.home) as instance:
        for dagster_run in runs_of(instance, run.pid):
            for record in instance.all_logs(dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                if record.step_key == step_key:
                    return round(record.timestamp - run.wall_started, 1)
    return None


def _statuses(home: FaultHome, run: MlopsProcess) -> set[str]:
    with instance_at(home.home) as instance:
        return {dagster_run.status.value for dagster_run in runs_of(instance, run.pid)}


def _written_since(path: Path, run: MlopsProcess) -> bool:
    try:
        return path.stat().st_mtime >= run.wall_started
    except FileNotFoundError:
        return False


def _kill_the_model_server_before_predictions(home: FaultHome) -> tuple[int, MlopsProcess]:
    """Run the session until its deployment is done, kill the model server (the run frozen
    meanwhile), let the run go on: its predictions must fail naming the model server."""
    run = home.run_session("server-killed.log")
    serving = home.home / "objects" / "teams" / TEAM / "serving"
    # the session's deployment record is the serving step's last write: a file to poll fast, so the
    # run is frozen before its predictions start (a step event read from the instance can come late)
    session_record = serving / "deployments" / f"{SESSION.isoformat()}.json"
    wait_until("the serving deployment", lambda: _written_since(session_record, run), run, every_s=0.01)
    run.freeze()
    record = serving / "deployment.json"
    server = int(json.loads(record.read_text())["instance_id"])
    # the whole server at once, its supervisor and its worker processes, as a crash or an
    # out-of-memory kill takes them (a worker whose supervisor alone dies finishes its requests)
    os.killpg(server, signal.SIGKILL)
    run.thaw()
    assert run.wait() == 1, run.output()
    return server, run


@pytest.mark.timeout(1800)
def test_kill_9_at_every_point_of_a_session_then_rerun(fault_home: FaultHome) -> None:
    rows: list[tuple[str, str, float | None]] = []
    previous: tuple[str, str, MlopsProcess] | None = None
    for index, (point, trigger, passed_step) in enumerate(KILL_POINTS):
        if point == "predictions":
            # scenario 6 on the way: the model server dies between deployment and predictions
            server, failed = _kill_the_model_server_before_predictions(fault_home)
            output = failed.output()
            cause = f"red_predict MSFT: red-MSFT on {SESSION}: team red's model server (process {server}, "
            lines = [line for line in output.splitlines() if line.startswith(cause)]
            assert len(lines) == 1 and "does not answer: nothing predicted" in lines[0], output
            assert not (fault_home.home / "objects" / "teams" / TEAM / "predictions" / "MSFT").is_dir()
            assert broker_orders(fault_home.home) == []  # no prediction, no order
        run = fault_home.run_session(f"kill-{index}.log")
        # the order book is a quick read: poll it fast, to stop inside the orders step
        wait_until(point, trigger(fault_home, run), run, every_s=0.01 if point == "order placement" else 0.1)
        if previous is not None:
            rows.append((previous[0], previous[1], _passed_after(fault_home, run, previous[1])))
            assert "STARTED" not in _statuses(fault_home, previous[2])  # marked failed at this start
        if point == "predictions":
            assert "deploying again" in run.output() or _passed_after(fault_home, run, f"{TEAM}__serving")
        killed = run.kill_tree()
        assert not [pid for pid in killed if alive(pid)], f"a process survived the kill at {point}"
        assert_store_reads_back(fault_home.home)
        assert_no_duplicate_orders(fault_home.home)
        previous = (point, passed_step, run)

    rerun = fault_home.run_session("rerun.log")
    assert rerun.wait() == 0, rerun.output()
    assert previous is not None
    rows.append((previous[0], previous[1], _passed_after(fault_home, rerun, previous[1])))
    assert "STARTED" not in _statuses(fault_home, previous[2])
    assert_no_run_left_started(fault_home.home)
    assert_store_reads_back(fault_home.home)
    assert assert_no_duplicate_orders(fault_home.home) == 1  # MSFT bought once
    assert not stray_model_servers(fault_home.home)
    for point, step, seconds in rows:
        print(f"kill -9 at {point}: the next run completed {step} {seconds} s after it started")
    assert all(seconds is not None for _, _, seconds in rows), rows


@pytest.mark.timeout(1200)
def test_the_same_session_launched_twice_at_once_places_one_set_of_orders(fault_home: FaultHome) -> None:
    before = len(broker_orders(fault_home.home))
    started = time.monotonic()
    first = fault_home.run_session("twice-1.log", NEXT_SESSION)
    second = fault_home.run_session("twice-2.log", NEXT_SESSION)
    codes = (first.wait(), second.wait())
    print(f"one session launched twice at once: both done in {time.monotonic() - started:.1f} s")
    assert codes == (0, 0), first.output() + second.output()
    waited = [run for run in (first, second) if "waiting for it" in run.output()]
    assert len(waited) == 1, (first.output(), second.output())
    assert "up to date" in waited[0].output()
    # the orders step ran once, in the first run; the second found it up to date
    placed = [run for run in (first, second) if _passed_after(fault_home, run, f"{TEAM}__orders")]
    assert placed == [run for run in (first, second) if run not in waited], placed
    new = broker_orders(fault_home.home)[before:]
    assert all(order[4] == NEXT_SESSION.isoformat() for order in new), new
    assert_no_duplicate_orders(fault_home.home)
    assert_store_reads_back(fault_home.home)
    assert_no_run_left_started(fault_home.home)
    assert not stray_model_servers(fault_home.home)
