"""``mlops run``: one session's partitioned jobs, executed in this process.

A session runs the same partitioned asset jobs the schedules and the automation sensor launch:
shared market data per session and ticker, then each team's stages, then the leaderboard. Each
(job, partition) is its own Dagster run on the configured instance, so the runs, their logs and the
asset history appear in the UI afterwards. A ticker whose market data fails is skipped by every
team; one team's failure never stops another team. Runs of a process that died (killed ``mlops
run``) are marked failed when the next one starts; a second ``mlops run`` of a session waits for
the first (a file lock), and a team's serving step is not up to date while its server is dead.
"""

from __future__ import annotations

import fcntl
import gc
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from mlops_pipeline.asset_freshness import fresh
from mlops_pipeline.assets.common import settings_tag
from mlops_pipeline.assets.competition import LEADERBOARD
from mlops_pipeline.assets.market import FEATURES, PRICES
from mlops_pipeline.assets.sessions import session_ticker_key
from mlops_pipeline.config.platform import Platform, SessionError
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.defs_builder import LEADERBOARD_JOB, MARKET_JOB, build_definitions
from mlops_pipeline.instance import open_instance
from mlops_pipeline.run_errors import failure_reason, waiting_note
from mlops_pipeline.run_launcher import HOST_TAG, PID_TAG, fail_orphaned_runs
from mlops_pipeline.sandbox_service import ensure_sandbox, uses_sandbox
from mlops_pipeline.stages import STAGES, TEAM_STAGES, team_job_name

_QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class SessionRunError(RuntimeError):
    """A session could not start (bad date, unreachable service)."""


@dataclass(frozen=True)
class PartitionRun:
    job: str
    partition: str
    status: str  # "success" | "up to date" | "waiting" | "failure" | "skipped"
    seconds: float
    run_id: str | None
    note: str = ""


@dataclass
class SessionReport:
    as_of: date
    settings: PlatformSettings
    runs: list[PartitionRun] = field(default_factory=list)

    @property
    def failed_count(self) -> int:
        return sum(run.status in ("failure", "skipped") for run in self.runs)

    @property
    def waiting_count(self) -> int:
        return sum(run.status == "waiting" for run in self.runs)

    @property
    def total_count(self) -> int:
        return len(self.runs)

    @property
    def ok(self) -> bool:
        return self.failed_count == 0

    def render(self) -> Table:
        succeeded = self.total_count - self.failed_count - self.waiting_count
        waiting = f", {self.waiting_count} waiting" if self.waiting_count else ""
        table = Table(title=f"Session {self.as_of} ({succeeded}/{self.total_count} ok{waiting})")
        for column in ("job", "ticker", "status", "seconds", "run id", "note"):
            table.add_column(column)
        style = {
            "success": "green",
            "up to date": "green",
            "waiting": "cyan",
            "failure": "red",
            "skipped": "yellow",
        }
        for run in self.runs:
            table.add_row(
                run.job, run.partition, Text(run.status, style=style[run.status]), f"{run.seconds:.1f}",
                (run.run_id or "")[:8], run.note,
            )  # fmt: skip
        return table

    def locations(self) -> list[tuple[str, str]]:
        s = self.settings
        objects = s.storage_root_path if s.storage == "local" else f"s3://{s.s3_bucket}/{s.s3_prefix}"
        return [
            ("market prices", f"{objects}/market/prices/<TICKER>/<session>.parquet"),
            ("market features", f"{objects}/market/features/<TICKER>/<session>.parquet"),
            ("team datasets", f"{objects}/teams/<team>/datasets/<TICKER>/<session>.parquet"),
            ("predictions", f"{objects}/teams/<team>/predictions/<TICKER>/<session>.parquet"),
            ("trading journal", f"{objects}/teams/<team>/journal/"),
            ("monitoring", f"evidently UI {s.evidently_ui_url} (mlops ui); mlops monitoring export"),
            ("leaderboard", f"{objects}/competition/leaderboard.html  (or: mlops leaderboard)"),
            ("MLflow", f"{s.mlflow_tracking_uri}  (mlflow ui --backend-store-uri {s.mlflow_tracking_uri})"),
            ("model servers", "keep running as the teams' deployments; mlops stop stops them"),
            ("Dagster instance (runs, logs, asset history)", str(s.dagster_home_path)),
            ("Dagster UI", "make ui  (or: .venv/bin/mlops ui), then open http://127.0.0.1:3000"),
        ]


@dataclass(frozen=True)
class _Step:
    job: str
    partition: str
    ticker: str | None
    team: str | None
    assets: tuple[dg.AssetKey, ...]
    blocked_by: str | None = None  # a job of the same team whose failure makes this step pointless
    live: bool = False  # it leaves a server running: up to date only while that server answers


def plan_steps(
    platform: Platform, day: date, teams: list[str], stages: tuple[str, ...] = STAGES
) -> list[_Step]:
    """Every run of one session, in order: market data of the chosen teams' tickers, then each
    team's stages, then the leaderboard (which ranks every team of the platform)."""
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SessionRunError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    session = day.isoformat()
    chosen = {name: platform.teams[name] for name in teams}
    tickers = sorted({ticker for team in chosen.values() for ticker in team.tickers})
    steps = []
    if "market" in stages:
        steps += [
            _Step(MARKET_JOB, str(session_ticker_key(day, ticker)), ticker, None, (PRICES, FEATURES))
            for ticker in tickers
        ]
    for name, team in chosen.items():
        serve_job = team_job_name(name, TEAM_STAGES[1])
        for stage in TEAM_STAGES:
            if stage.suffix not in stages:
                continue
            job = team_job_name(name, stage)
            blocked_by = serve_job if stage.suffix == "predict" else None
            assets = tuple(dg.AssetKey([name, asset]) for asset in stage.assets)
            if stage.per_ticker:
                steps += [
                    _Step(job, str(session_ticker_key(day, ticker)), ticker, name, assets, blocked_by)
                    for ticker in team.tickers
                ]
            else:
                live = stage.suffix == "serve"
                steps.append(_Step(job, session, None, name, assets, blocked_by, live))
    if "rank" in stages:
        steps.append(_Step(LEADERBOARD_JOB, session, None, None, (LEADERBOARD,)))
    return steps


def _skip(
    step: _Step, market_outcome: dict[str, str], failed_jobs: set[tuple[str | None, str]]
) -> tuple[str, str] | None:
    """``(status, note)`` of a step that need not run: its ticker's market data failed or waits, or
    a job it depends on failed."""
    if step.ticker is not None and step.job != MARKET_JOB and step.ticker in market_outcome:
        status = market_outcome[step.ticker]
        verb = "waits" if status == "waiting" else "failed"
        return ("waiting" if status == "waiting" else "skipped"), f"market data {verb} for this ticker"
    if step.blocked_by is not None and (step.team, step.blocked_by) in failed_jobs:
        return "skipped", f"{step.blocked_by} failed"
    return None


def up_to_date(graph: dg.AssetGraph, instance: dg.DagsterInstance, step: _Step) -> bool:
    """Whether every asset of the step has a materialization of the step's partition that is newer
    than every materialization of its inputs (its own previous session aside): running it again
    would change nothing."""
    return all(fresh(graph, instance, key, step.partition) for key in step.assets)


def model_server_answers(settings: PlatformSettings, team: str) -> bool:
    """Whether the team's recorded model server answers (a team without one has nothing to lose)."""
    from mlops_pipeline.resources.object_store import object_store_from_settings
    from mlops_pipeline.serving.launch import Deployment, is_ready
    from mlops_pipeline.team_store import LIVE_DEPLOYMENT_KEY, team_store

    live = Deployment.stored(team_store(object_store_from_settings(settings), team), LIVE_DEPLOYMENT_KEY)
    return live is None or is_ready(live.readiness_url)


def run_session(
    platform: Platform,
    day: date,
    teams: list[str] | None = None,
    console: Console | None = None,
    stages: tuple[str, ...] = STAGES,
    force: bool = False,
) -> SessionReport:
    """Run one session: market data, then each chosen team's stages, then the leaderboard. A step
    whose partitions are all materialized after their inputs is up to date and not run (``force``
    runs it all the same)."""
    try:
        platform.check_session(day)
    except SessionError as exc:
        raise SessionRunError(str(exc)) from None
    console = console or Console(quiet=True)
    with ExitStack() as stack:
        settings = platform.settings
        # Before the sandbox: a run that waits must not lean on the sandbox of the run it waits for.
        stack.enter_context(session_lock(settings, day, console))
        if uses_sandbox(settings):
            settings = settings.model_copy(
                update={"sandbox_url": stack.enter_context(ensure_sandbox(settings))}
            )
        defs = build_definitions(
            Platform(settings, platform.teams, platform.first_session, platform.last_session)
        )
        instance = stack.enter_context(open_instance())
        steps = plan_steps(platform, day, teams or list(platform.teams), stages)
        skip_survivors = stack.enter_context(collections_skip_existing_objects())
        return _run_steps(
            defs, instance, settings, day, steps, console, force, f"session {day}", skip_survivors
        )


@contextmanager
def collections_skip_existing_objects() -> Iterator[Callable[[], None]]:
    """While open, the garbage collector leaves alone the objects that existed when it opened (the
    libraries, the code location, what earlier sessions of this process loaded): a full collection
    during the session traverses the session's own objects only. In a process that had run a
    session before, the next session's one full collection took 0.8 s of CPU. It yields a function
    that adds the objects that survive now (call it after a step: the libraries the step imported,
    torch, Ludwig, MLflow, evidently) once the young ones are collected: a fresh ``mlops run``'s
    main process spent 1.9 of its 17 s of CPU in 15 full collections while its steps imported
    them. Closed, they are all collectable again. Does nothing where something else froze objects
    already."""
    if gc.get_freeze_count():
        yield lambda: None
        return
    gc.freeze()
    try:
        yield _freeze_survivors
    finally:
        gc.unfreeze()


def _freeze_survivors() -> None:
    gc.collect(1)  # the young generations only: a step's short-lived cycles, not the old objects
    gc.freeze()


@contextmanager
def session_lock(settings: PlatformSettings, day: date, console: Console) -> Iterator[None]:
    """One ``mlops run`` of a session at a time on this home: a second one started meanwhile waits
    for the first, then finds its steps up to date (one set of orders, one training, one server).
    A file lock, released by the operating system when its holder dies."""
    folder = settings.home_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"session-{day.isoformat()}.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            console.print(f"session {day} is being run by {holder}: waiting for it to finish", soft_wrap=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"mlops pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_steps(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: PlatformSettings,
    day: date,
    steps: list[_Step],
    console: Console,
    force: bool,
    label: str,
    skip_survivors: Callable[[], None],
) -> SessionReport:
    graph = defs.resolve_asset_graph()
    for run_id in fail_orphaned_runs(instance):
        console.print(f"run {run_id[:8]} of a process that is gone: marked failed")
    report = SessionReport(as_of=day, settings=settings)
    base_tags = {
        **settings_tag(settings),
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
    }
    market_outcome: dict[str, str] = {}  # ticker -> "waiting" | "failure"
    failed_jobs: set[tuple[str | None, str]] = set()
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(steps))
        for step in steps:
            label = step.ticker or "-"
            progress.update(task, description=f"{label}: {step.job} [{step.partition}]")
            skip = _skip(step, market_outcome, failed_jobs)
            if skip is None and not force and up_to_date(graph, instance, step):
                if step.live and step.team is not None and not model_server_answers(settings, step.team):
                    console.print(f"team {step.team}: its model server does not answer: deploying again")
                else:
                    skip = ("up to date", "materialized after its inputs (--force runs it again)")
            if skip is not None:
                report.runs.append(PartitionRun(step.job, label, skip[0], 0.0, None, skip[1]))
                progress.advance(task)
                continue
            started = time.monotonic()
            result = defs.resolve_job_def(step.job).execute_in_process(
                instance=instance,
                partition_key=step.partition,
                tags=base_tags,
                run_config=_QUIET_LOGS,
                raise_on_error=False,
            )
            seconds = time.monotonic() - started
            waiting = waiting_note(result.all_events) if result.success else None
            if waiting is not None:
                if step.job == MARKET_JOB and step.ticker is not None:
                    market_outcome[step.ticker] = "waiting"
                report.runs.append(PartitionRun(step.job, label, "waiting", seconds, result.run_id, waiting))
            elif result.success:
                report.runs.append(PartitionRun(step.job, label, "success", seconds, result.run_id))
            else:
                failed_jobs.add((step.team, step.job))
                if step.job == MARKET_JOB and step.ticker is not None:
                    market_outcome[step.ticker] = "failure"
                report.runs.append(
                    PartitionRun(
                        step.job, label, "failure", seconds, result.run_id, failure_reason(result.all_events)
                    )
                )
            skip_survivors()
            progress.advance(task)
    return report
