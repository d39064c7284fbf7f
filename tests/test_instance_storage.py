"""The embedded instance's storage: a pool slot is held by one step however many claim it, a run's
database is Dagster's, made by a copy, and a run's output is captured and still shown."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import time
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as db
import yaml
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite import sqlite_run_storage
from dagster._core.storage.schedules.sqlite import sqlite_schedule_storage
from sqlalchemy.engine import Engine

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.instance_storage import POOL_RECHECK_S, EmbeddedSqliteEventLogStorage, sqlite_engine

CLAIMERS = 6
TRIALS = 15  # Dagster's plain SQLite storage gave a pool of one to two claimers in 3 of 10 trials
STEP = "orders"


@dg.asset(name="one")
def _one() -> int:
    return 1


def _claim_fresh_pools(barrier: Barrier, run_id: str, results: Queue) -> None:
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        for trial in range(TRIALS):
            barrier.wait(timeout=60)  # every claimer starts the trial's claims at the same moment
            pool = f"pool-{trial}"
            storage.initialize_concurrency_limit_to_default(pool)
            results.put((trial, run_id, storage.claim_concurrency_slot(pool, run_id, STEP).is_claimed))


def test_a_pool_of_one_is_held_by_one_step_when_several_claim_it_at_once(isolated_env: Path) -> None:
    ensure_home(load_settings())
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, EmbeddedSqliteEventLogStorage)
        assert instance.global_op_concurrency_default_limit == 1
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(CLAIMERS), context.Queue()
    run_ids = [str(uuid.uuid4()) for _ in range(CLAIMERS)]
    claimers = [
        context.Process(target=_claim_fresh_pools, args=(barrier, run_id, results)) for run_id in run_ids
    ]
    for claimer in claimers:
        claimer.start()
    answers = [results.get(timeout=120) for _ in range(CLAIMERS * TRIALS)]
    for claimer in claimers:
        claimer.join(timeout=30)
        assert claimer.exitcode == 0
    holders = {
        trial: [run_id for t, run_id, held in answers if t == trial and held] for trial in range(TRIALS)
    }
    assert {trial: len(held) for trial, held in holders.items()} == dict.fromkeys(range(TRIALS), 1)

    # The holder's slot goes to the step that has waited longest.
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.free_concurrency_slot_for_step(holders[0][0], STEP)
        now_claimed = [
            run_id for run_id in run_ids if storage.claim_concurrency_slot("pool-0", run_id, STEP).is_claimed
        ]
        assert len(now_claimed) == 1 and now_claimed != holders[0]


def test_a_home_written_with_dagsters_plain_sqlite_storage_keeps_its_runs(isolated_env: Path) -> None:
    settings = load_settings()
    ensure_home(settings)
    instance_yaml = settings.dagster_home_path / "dagster.yaml"
    earlier = yaml.safe_load(instance_yaml.read_text(encoding="utf-8"))
    del earlier["storage"], earlier["compute_logs"]  # as the previous version wrote it
    instance_yaml.write_text(yaml.safe_dump(earlier), encoding="utf-8")

    @dg.asset
    def prices() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        run_id = dg.materialize([prices], instance=instance).run_id
    ensure_home(settings)  # brings the file up to date
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, EmbeddedSqliteEventLogStorage)
        assert instance.get_run_by_id(run_id).is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("prices")).run_id == run_id


def test_each_database_keeps_one_engine_whose_statements_are_compiled_once(isolated_env: Path) -> None:
    ensure_home(load_settings())

    @dg.asset
    def prices() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        dg.materialize([prices], instance=instance)
        before = sqlite_engine.cache_info()
        run_id = dg.materialize([prices], instance=instance).run_id
        for _ in range(3):
            assert instance.get_run_by_id(run_id).is_success
            assert instance.get_latest_materialization_event(dg.AssetKey("prices")).run_id == run_id
            assert instance.all_logs(run_id)
            assert instance.all_instigator_state() == []
        after = sqlite_engine.cache_info()
        index = sqlite_engine(instance.event_log_storage.conn_string_for_shard("index"), 30)
    assert after.misses - before.misses == 1  # the new run's own database; index, runs, schedules kept
    assert after.hits - before.hits > 20
    assert len(index._compiled_cache) > 0  # what the next query of the index finds compiled


def test_a_database_connection_is_kept_by_its_process_while_its_file_stays(isolated_env: Path) -> None:
    ensure_home(load_settings())

    with dg.DagsterInstance.get() as instance:
        run_id = dg.materialize([_one], instance=instance).run_id
        engine = sqlite_engine(instance.event_log_storage.conn_string_for_shard(run_id), 30)
        with engine.connect() as first:
            kept = first.connection.dbapi_connection
        instance.report_engine_event("written on the kept connection", instance.get_run_by_id(run_id))
        with engine.connect() as again:
            assert again.connection.dbapi_connection is kept

        # In a forked process the parent's connection is never used: the child opens its own.
        readers = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(
            target=_report_whether_the_connection_is_the_parents, args=(engine, id(kept), readers)
        )
        child.start()
        assert readers.get(timeout=60) == (False, len(instance.all_logs(run_id)))
        child.join(timeout=30)
        with engine.connect() as still:
            assert still.connection.dbapi_connection is kept

        # The instance wiped (its run databases deleted): a new file, a new connection.
        instance.wipe()
        run_id = dg.materialize([_one], instance=instance).run_id
        assert instance.get_run_by_id(run_id).is_success
        assert len(instance.all_logs(run_id)) > 5


def _report_whether_the_connection_is_the_parents(engine: Engine, parents: int, answers: Queue) -> None:
    with engine.connect() as connection:
        events = connection.execute(db.text("SELECT count(*) FROM event_logs")).scalar()
        answers.put((id(connection.connection.dbapi_connection) == parents, events))


def test_the_live_run_log_sees_events_kept_in_the_write_ahead_log(isolated_env: Path) -> None:
    ensure_home(load_settings())

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(dg.materialize([_one], instance=instance).run_id)
        cursor = instance.get_records_for_run(run.run_id).cursor
        seen: Queue = multiprocessing.get_context("fork").Queue()
        instance.event_log_storage.watch(run.run_id, cursor, lambda event, _cursor: seen.put(event.message))
        database = Path(instance.event_log_storage.path_for_shard(run.run_id))
        before = database.stat().st_mtime_ns
        instance.report_engine_event("a step's progress", run)
        assert seen.get(timeout=30) == "a step's progress"
        assert database.stat().st_mtime_ns == before  # in the log file only, until a checkpoint


def test_a_home_at_the_schema_head_opens_without_dagsters_migration_checks(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_home(load_settings())
    with dg.DagsterInstance.get() as instance:
        run_id = dg.materialize([_one], instance=instance).run_id  # Dagster creates the databases
        runs_database = Path(instance.root_directory) / "history" / "runs.db"
    checked: list[str] = []
    for module in (sqlite_run_storage, sqlite_schedule_storage, sqlite_event_log):
        original = module.check_alembic_revision
        monkeypatch.setattr(
            module,
            "check_alembic_revision",
            lambda config, connection, original=original, name=module.__name__: (
                checked.append(name) or original(config, connection)
            ),
        )

    def open_and_read() -> None:
        with dg.DagsterInstance.get() as instance:
            assert instance.get_run_by_id(run_id).is_success
            assert instance.all_instigator_state() == []
            assert instance.get_latest_materialization_event(dg.AssetKey("one")).run_id == run_id

    open_and_read()
    assert checked == []

    # A database that lost its stamp is Dagster's to check (and stamp) as before.
    with sqlite3.connect(runs_database) as connection:
        connection.execute("DELETE FROM alembic_version")
    open_and_read()
    assert checked == [sqlite_run_storage.__name__]


def _schema(database: Path) -> tuple[list, list, list]:
    with sqlite3.connect(database) as connection:
        objects = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
        return (
            objects.fetchall(),
            connection.execute("SELECT version_num FROM alembic_version").fetchall(),
            connection.execute("PRAGMA journal_mode").fetchall(),
        )


def test_a_runs_database_is_the_one_dagster_makes(tmp_path: Path) -> None:
    dagsters, embedded = (
        SqliteEventLogStorage(str(tmp_path / "plain")),
        EmbeddedSqliteEventLogStorage(str(tmp_path / "embedded")),
    )
    for storage in (dagsters, embedded):
        with storage.run_connection("a-run"):
            pass
    made = _schema(Path(embedded.path_for_shard("a-run")))
    assert made == _schema(Path(dagsters.path_for_shard("a-run")))
    assert any(name == "event_logs" for _, name, *_ in made[0]) and made[2] == [("wal",)]
    assert {path.name for path in (tmp_path / "embedded").glob("*.db*")} <= {
        "a-run.db", "a-run.db-wal", "a-run.db-shm", "index.db", "index.db-wal", "index.db-shm"
    }  # fmt: skip

    # A reader that opened the file first (SQLite then leaves it empty): the run's tables are added.
    sqlite3.connect(embedded.path_for_shard("early")).close()
    with embedded.run_connection("early"):
        pass
    assert _schema(Path(embedded.path_for_shard("early"))) == made


_PRINTING_RUN = """
import os, sys
import dagster as dg

@dg.asset
def talkative() -> None:
    print("from the step")
    print("to stderr", file=sys.stderr)
    os.system("echo from a child process")

with dg.DagsterInstance.get() as instance:
    result = dg.materialize([talkative], instance=instance)
    print("RUN", result.run_id)
"""


def test_a_runs_output_is_captured_for_the_ui_and_still_shown(isolated_env: Path) -> None:
    ensure_home(load_settings())
    shown = subprocess.run(
        [sys.executable, "-c", _PRINTING_RUN], check=False, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "from the step" in shown.stdout and "from a child process" in shown.stdout
    assert "to stderr" in shown.stderr
    run_id = shown.stdout.split("RUN ")[-1].strip()
    with dg.DagsterInstance.get() as instance:
        manager = instance.compute_log_manager
        assert type(manager).__name__ == "EmbeddedComputeLogManager"
        [captured] = [
            event.dagster_event.logs_captured_data
            for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
        ]
        log_key = manager.build_log_key_for_run(run_id, captured.file_key)
        assert manager.is_capture_complete(log_key)
        logs = manager.get_log_data(log_key)
    assert b"from the step" in logs.stdout and b"from a child process" in logs.stdout
    assert b"to stderr" in logs.stderr


_POOLED_RUN = """
import resource, sys, time
from pathlib import Path
import dagster as dg
from mlops_pipeline.pool_waits import sleep_between_pool_checks

sleep_between_pool_checks()
hold_s, flag = float(sys.argv[1]), Path(sys.argv[2])

@dg.asset(pool="alphavantage")
def prices() -> None:
    flag.touch()
    time.sleep(hold_s)

with dg.DagsterInstance.get() as instance:
    cpu, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    dg.materialize([prices], instance=instance)
    used = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{time.monotonic() - wall} {used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime}")
"""


def _pooled_run(hold_s: float, flag: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _POOLED_RUN, str(hold_s), str(flag)], stdout=subprocess.PIPE, text=True
    )


def test_a_run_waiting_for_its_pool_sleeps_instead_of_spinning(isolated_env: Path, tmp_path: Path) -> None:
    ensure_home(load_settings())
    holding, waited = tmp_path / "holding", tmp_path / "waited"
    holder = _pooled_run(5.0, holding)
    deadline = time.monotonic() + 120
    while not holding.exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the first run never took the pool"
        time.sleep(0.05)
    waiter = _pooled_run(0.0, waited)
    out, _ = waiter.communicate(timeout=120)
    holder.communicate(timeout=120)
    assert waiter.returncode == 0 and holder.returncode == 0
    wall_s, cpu_s = map(float, out.split())
    assert wall_s > 2.0, "the second run did not wait for the pool"
    # Dagster's own loop spun a core the whole wait (CPU time about equal to the wait).
    assert cpu_s < 0.5 * wall_s, f"{cpu_s:.1f} s of CPU in a {wall_s:.1f} s run, mostly waiting"

    # A blocked step tries again soon: a claim on a local file costs milliseconds.
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("held")
        assert storage.claim_concurrency_slot("held", "first-run", STEP).is_claimed
        blocked = storage.claim_concurrency_slot("held", "second-run", STEP)
    assert not blocked.is_claimed and blocked.sleep_interval == POOL_RECHECK_S
