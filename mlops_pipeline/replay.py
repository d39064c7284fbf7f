"""``mlops compete``: a range of sessions replayed as Dagster asset backfills, one per session.

Each session's backfill targets the chosen teams' assets of that session, the shared market data of
their tickers and the leaderboard, by default only the partitions not materialized yet, so running
the same replay again costs nothing and one that was interrupted goes on where it stopped. They are
ordinary backfills of the instance: the UI lists them on its backfills page, and their runs go
through the instance's run coordinator and launcher. Within a session the dependencies order the
runs (market data, models, serving, predictions, trading, backtest, leaderboard) and tickers and
teams run side by side.

Why one backfill per session rather than one over the range: a team's state moves forward from
session to session outside the partitions (the models registered in MLflow and the champion alias,
the live model server, the paper account), so session ``d + 1`` may only start once ``d`` is done.
One backfill would start independent-looking partitions of later sessions early: a model trained
on later data serving an earlier session's predictions.

Who executes them: a running Dagster daemon (``mlops ui``, the compose stack) when there is one;
otherwise this process does the daemon's work for its own backfill (the backfill iterations, and
the run queue when the instance has one). Either way this process follows them with a progress
bar. Interrupted, a backfill stays requested: the next ``mlops compete`` of the same range, or a
daemon, carries it on.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import dagster as dg
import sqlalchemy as db
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_jobs
from dagster._daemon.controller import get_daemon_statuses
from dagster._daemon.daemon import BackfillDaemon
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._time import get_current_timestamp
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mlops_pipeline.asset_freshness import input_partitions, materialized_after
from mlops_pipeline.assets.common import settings_tag
from mlops_pipeline.assets.competition import LEADERBOARD
from mlops_pipeline.assets.market import FEATURES, PRICES
from mlops_pipeline.assets.sessions import SESSION_KEY_FORMAT, TICKER, session_ticker_key
from mlops_pipeline.config.platform import Platform, SessionError
from mlops_pipeline.market.calendar import trading_days
from mlops_pipeline.partition_key_memo import partition_keys_listed_once
from mlops_pipeline.run_errors import failure_reason, run_events
from mlops_pipeline.run_launcher import PreforkRunLauncher, fail_orphaned_runs

CODE_LOCATION = "mlops_pipeline.definitions"  # the module, and the location name `mlops ui` gives it
REPLAY_TAG = "mlops/replay"  # the range and teams of a compete: the next compete of them carries it on
SESSION_TAG = "mlops/session"
# How often this process looks for progress: one millisecond's query of the event log's index.
_POLL_S = 0.1
# An asset event is acted on once none followed for this long, or this long after the first (a run's
# end is acted on at once).
_SETTLE_S = 0.5
_SETTLE_MAX_S = 1.5
# Without a new asset or run event, the backfill is iterated this often all the same (an iteration
# costs a few tenths of a second of CPU, which the runs of a 2-core machine need).
_QUIET_ITERATION_S = 5.0
# A backfill changes only when it is iterated. This process reads it again after its own
# iterations, and this often for a daemon's (about 130 kB to read and decode: each of its
# partition subsets carries the sessions definition); as often, it looks whether a daemon runs.
_QUIET_READ_S = 1.0
_DAEMON_HEARTBEAT_TOLERANCE_S = 30  # a daemon silent longer than its heartbeat interval plus this is gone
_TERMINAL = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


class ReplayError(RuntimeError):
    """A replay could not start (a range outside the sessions, a code location that fails to load)."""


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    assets: str
    partition: str
    error: str


@dataclass(frozen=True)
class SessionBackfill:
    day: date
    backfill_id: str | None  # None: every partition of the session was already materialized
    status: str
    targeted: int
    materialized: int
    failed: int
    failed_runs: tuple[FailedRun, ...]

    @property
    def ok(self) -> bool:
        return self.status in ("COMPLETED_SUCCESS", "NOTHING_TO_DO") and self.failed == 0


@dataclass(frozen=True)
class ReplayReport:
    sessions: tuple[SessionBackfill, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(session.ok for session in self.sessions)


def replay_partitions(
    graph: BaseAssetGraph, platform: Platform, days: list[date], teams: list[str]
) -> dict[date, set[AssetKeyPartitionKey]]:
    """Every asset partition of the sessions ``days`` a replay of ``teams`` covers, by session: the
    teams' own assets, the market data of their tickers, and the leaderboard."""
    chosen = {name: platform.teams[name] for name in teams}
    tickers = {ticker for team in chosen.values() for ticker in team.tickers}
    keys = [PRICES, FEATURES, LEADERBOARD] + [
        key for key in graph.materializable_asset_keys if key.path[0] in chosen and len(key.path) > 1
    ]
    partitions: dict[date, set[AssetKeyPartitionKey]] = {day: set() for day in days}
    for key in keys:
        partitions_def = graph.get(key).partitions_def
        if isinstance(partitions_def, dg.MultiPartitionsDefinition):
            ticker_keys = partitions_def.get_partitions_def_for_dimension(TICKER).get_partition_keys()
            shared = key in (PRICES, FEATURES)  # every team's tickers: only the chosen teams' ones
            for day in days:
                partitions[day].update(
                    AssetKeyPartitionKey(key, session_ticker_key(day, ticker))
                    for ticker in ticker_keys
                    if not shared or ticker in tickers
                )
        elif partitions_def is not None:  # the sessions
            for day in days:
                partitions[day].add(AssetKeyPartitionKey(key, day.strftime(SESSION_KEY_FORMAT)))
    return partitions


def _outdated(
    instance: dg.DagsterInstance, graph: BaseAssetGraph, partitions: set[AssetKeyPartitionKey]
) -> set[AssetKeyPartitionKey]:
    """The partitions not materialized yet, materialized before one of their inputs (an import
    of history, a model trained again), or reading one of those: what a replay has to make."""
    by_key: dict[dg.AssetKey, set[str]] = {}
    for item in partitions:
        by_key.setdefault(item.asset_key, set()).add(str(item.partition_key))
    outdated: set[AssetKeyPartitionKey] = set()
    for key in graph.toposorted_asset_keys:
        for partition in sorted(by_key.get(key, ())):
            inputs = input_partitions(graph, key, partition)
            reads_outdated = any(AssetKeyPartitionKey(*item) in outdated for item in inputs)
            if reads_outdated or not materialized_after(instance, key, partition, inputs):
                outdated.add(AssetKeyPartitionKey(key, partition))
    return outdated


@contextmanager
def code_location_context(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The code location, loaded in this process under the name the UI gives it, from the current
    settings (a module imported before, with other settings, is imported again)."""
    sys.modules.pop(CODE_LOCATION, None)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable, module_name=CODE_LOCATION, working_directory=os.getcwd()
        ),
        location_name=CODE_LOCATION,
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
        errors = context.create_request_context().get_code_location_error(CODE_LOCATION)
        if errors is not None:
            raise ReplayError(f"the code location {CODE_LOCATION} does not load: {errors.message.strip()}")
        yield context


def daemon_runs_backfills(instance: dg.DagsterInstance) -> bool:
    """Whether a Dagster daemon serves this instance's backfills now."""
    status = get_daemon_statuses(
        instance, [BackfillDaemon.daemon_type()], heartbeat_tolerance_seconds=_DAEMON_HEARTBEAT_TOLERANCE_S
    ).get(BackfillDaemon.daemon_type())
    return status is not None and status.healthy is True


def start_launching(instance: dg.DagsterInstance) -> None:
    """Prepare this process to launch the replay's runs when it is the one to launch them (no
    daemon serves the instance): the embedded launcher's fork server starts importing now."""
    launcher = instance.run_launcher
    if isinstance(launcher, PreforkRunLauncher) and not daemon_runs_backfills(instance):
        launcher.start_fork_server()


def _unfinished(instance: dg.DagsterInstance, replay_tag: str, day: date) -> PartitionBackfill | None:
    for backfill in instance.get_backfills(filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])):
        if backfill.tags.get(REPLAY_TAG) == replay_tag and backfill.tags.get(SESSION_TAG) == day.isoformat():
            return backfill
    return None


def replay(
    instance: dg.DagsterInstance,
    platform: Platform,
    start: date,
    end: date,
    teams: list[str],
    console: Console | None = None,
    everything: bool = False,
) -> ReplayReport:
    """Replay the sessions ``start`` to ``end`` of ``teams``, one asset backfill per session in
    order, and wait for each. ``everything`` targets every partition, materialized or not (the
    default: the missing and outdated ones); an unfinished backfill of a session of the same replay is carried
    on rather than started again."""
    try:
        platform.check_range(start, end)
    except SessionError as exc:
        raise ReplayError(str(exc)) from None
    start_launching(instance)
    console = console or Console(quiet=True)
    replay_tag = json.dumps(
        {"from": start.isoformat(), "to": end.isoformat(), "teams": sorted(teams)}, sort_keys=True
    )
    started = time.monotonic()
    days = [stamp.date() for stamp in trading_days(start, end)]
    with code_location_context(instance) as context, _progress(console) as progress:
        graph = context.create_request_context().asset_graph
        driver = _Driver.from_context(context)
        wanted = replay_partitions(graph, platform, days, teams)
        planned = [_plan(instance, graph, day, wanted[day], everything, replay_tag) for day in days]
        task = progress.add_task("replay", total=sum(plan.remaining for plan in planned))
        sessions = []
        for index, plan in enumerate(planned):
            label = f"session {plan.day} ({index + 1}/{len(days)})"
            if plan.remaining == 0:
                sessions.append(
                    SessionBackfill(plan.day, None, "NOTHING_TO_DO", plan.wanted, plan.wanted, 0, ())
                )
                continue
            backfill = plan.unfinished or _submit(instance, graph, plan, platform, teams, replay_tag)
            verb = "carrying on" if plan.unfinished else "submitted"
            progress.console.print(f"{label}: backfill {backfill.backfill_id} {verb}", highlight=False)
            done_before = progress.tasks[0].completed - plan.settled
            result = _follow(driver, graph, backfill, progress, task, done_before, label)
            sessions.append(
                SessionBackfill(
                    plan.day, backfill.backfill_id, *result, _failed_runs(instance, backfill.backfill_id)
                )
            )
    return ReplayReport(tuple(sessions), time.monotonic() - started)


@dataclass(frozen=True)
class _SessionPlan:
    day: date
    wanted: int  # the session's asset partitions
    target: frozenset[AssetKeyPartitionKey]  # those a new backfill would materialize
    unfinished: PartitionBackfill | None  # a backfill of this session to carry on instead
    remaining: int  # what is left to materialize
    settled: int = 0  # what the unfinished backfill already materialized or failed


def _plan(
    instance: dg.DagsterInstance,
    graph: BaseAssetGraph,
    day: date,
    wanted: set[AssetKeyPartitionKey],
    everything: bool,
    replay_tag: str,
) -> _SessionPlan:
    target = frozenset(wanted if everything else _outdated(instance, graph, wanted))
    unfinished = None if everything else _unfinished(instance, replay_tag, day)
    if unfinished is None:
        return _SessionPlan(day, len(wanted), target, None, len(target))
    data = unfinished.get_asset_backfill_data(graph)
    targeted = data.target_subset.num_partitions_and_non_partitioned_assets
    left = (
        data.target_subset - data.materialized_subset - data.failed_and_downstream_subset
    ).num_partitions_and_non_partitioned_assets
    return _SessionPlan(day, len(wanted), target, unfinished, left, targeted - left)


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress


def _submit(
    instance: dg.DagsterInstance,
    graph: BaseAssetGraph,
    plan: _SessionPlan,
    platform: Platform,
    teams: list[str],
    replay_tag: str,
) -> PartitionBackfill:
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        backfill_timestamp=get_current_timestamp(),
        tags={
            REPLAY_TAG: replay_tag,
            SESSION_TAG: plan.day.isoformat(),
            **settings_tag(platform.settings),
        },
        dynamic_partitions_store=instance,
        asset_graph_subset=AssetGraphSubset.from_asset_partition_set(set(plan.target), graph),
        title=f"compete session {plan.day}",
        description=f"mlops compete, session {plan.day}: teams {', '.join(teams)}",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill


# What can let a backfill move on: an asset partition materialized or failed, a run ended (its
# slot in the queue freed). The index's other entries (planned materializations and checks, check
# results, runs enqueued, starting or started) cannot. Iterating on every entry, about twenty
# times a session at 0.16 s of CPU each, took about 7 % of a 2-core machine from the runs.
_ASSET_EVENTS = (
    dg.DagsterEventType.ASSET_MATERIALIZATION.value,
    dg.DagsterEventType.ASSET_FAILED_TO_MATERIALIZE.value,
)
_RUN_ENDS = (
    dg.DagsterEventType.RUN_SUCCESS.value,
    dg.DagsterEventType.RUN_FAILURE.value,
    dg.DagsterEventType.RUN_CANCELED.value,
)


class EventLogProgress(NamedTuple):
    """The ids of the event log index's newest asset event and newest run end."""

    asset: int | None
    run_end: int | None


def _progress_mark(storage: EventLogStorage) -> EventLogProgress:
    """Where the event log's progress stands (a millisecond's query of the index's event type
    column)."""
    if not isinstance(storage, SqlEventLogStorage):
        newest = storage.get_maximum_record_id()
        return EventLogProgress(newest, newest)
    events = SqlEventLogStorageTable
    kind = events.c.dagster_event_type
    query = db.select(
        db.func.max(db.case((kind.in_(_ASSET_EVENTS), events.c.id))),
        db.func.max(db.case((kind.in_(_RUN_ENDS), events.c.id))),
    ).where(kind.in_(_ASSET_EVENTS + _RUN_ENDS))
    with storage.index_connection() as connection:
        asset, run_end = connection.execute(query).one()
    return EventLogProgress(asset, run_end)


@dataclass
class _Driver:
    """The daemon's work for one backfill, done by this process when no daemon runs: request the
    runs whose inputs are ready, and launch queued runs within the instance's limits.

    It does it at once for a new backfill or when a run ended (all of that run's assets are in);
    after other progress (an asset partition materialized or failed) once that has settled: none
    further for ``_SETTLE_S``, or ``_SETTLE_MAX_S`` after the first; and every few seconds when
    nothing happened. A run materializes its assets a few tenths of a second apart: iterating at
    the first of them requests the next stage for one team (or one ticker) while the others'
    inputs are a moment away, and every extra run costs about half a second of CPU on top of its
    work and a launch on the session's critical path."""

    context: WorkspaceProcessContext
    logger: logging.Logger
    queue: QueuedRunCoordinatorDaemon | None
    _iterated: tuple[str, EventLogProgress] | None = field(default=None, init=False)  # backfill, mark
    _iterated_at: float = field(default=float("-inf"), init=False)
    _asset_mark: int | None = field(default=None, init=False)  # the newest asset event at the last call
    _moved_at: float = field(default=float("-inf"), init=False)  # when it last moved
    _unseen_since: float | None = field(default=None, init=False)  # its first move not iterated on

    @classmethod
    def from_context(cls, context: WorkspaceProcessContext) -> _Driver:
        logger = logging.getLogger("mlops.replay")
        logger.setLevel(logging.WARNING)
        logging.getLogger("dagster.daemon").setLevel(logging.WARNING)  # the run queue's per-tick lines
        queued = isinstance(context.instance.run_coordinator, QueuedRunCoordinator)
        return cls(context, logger, QueuedRunCoordinatorDaemon(interval_seconds=1) if queued else None)

    def iterate(self, backfill: PartitionBackfill, mark: EventLogProgress) -> bool:
        """Iterate ``backfill`` if it is a new one, if a run ended since the last iteration, if
        other progress since then has settled, or if a few quiet seconds passed; whether it did."""
        now = time.monotonic()
        if mark.asset != self._asset_mark:
            self._asset_mark, self._moved_at = mark.asset, now
            self._unseen_since = self._unseen_since if self._unseen_since is not None else now
        last = self._iterated[1] if self._iterated and self._iterated[0] == backfill.backfill_id else None
        settled = (
            last is not None
            and mark.asset != last.asset
            and (
                now - self._moved_at >= _SETTLE_S
                or (self._unseen_since is not None and now - self._unseen_since >= _SETTLE_MAX_S)
            )
        )
        due = last is None or mark.run_end != last.run_end or settled
        if not due and now - self._iterated_at < _QUIET_ITERATION_S:
            return False
        # the mark was read before iterating: what the iteration itself records (a run that ends
        # at once) is new at a later call, which then iterates again
        self._iterated, self._iterated_at, self._unseen_since = (backfill.backfill_id, mark), now, None
        # Dagster lists partitions at the backfill's creation time; each definition's keys (every
        # session x ticker) are listed once, not again for each asset it checks.
        with partition_keys_listed_once():
            for error in execute_backfill_jobs(self.context, self.logger, [backfill]):
                if error is not None:
                    raise ReplayError(f"backfill {backfill.backfill_id}: {error.message.strip()}")
        if self.queue is not None:
            for _ in self.queue.run_iteration(self.context):
                pass
        return True


def _follow(
    driver: _Driver,
    graph: BaseAssetGraph,
    backfill: PartitionBackfill,
    progress: Progress,
    task: TaskID,
    done_before: float,
    label: str,
) -> tuple[str, int, int, int]:
    """Drive (without a daemon) or follow one backfill to its end: its status, and how many asset
    partitions it targeted, materialized and failed."""
    instance = driver.context.instance
    announced = daemon = False
    read_at = daemon_seen_at = float("-inf")
    while True:
        if time.monotonic() - daemon_seen_at >= _QUIET_READ_S:
            daemon, daemon_seen_at = daemon_runs_backfills(instance), time.monotonic()
            # without a daemon, no run monitoring sees a run worker that died (a kill -9, the
            # out-of-memory killer): its run is failed here, and the backfill goes on without it
            if not daemon:
                for run_id in fail_orphaned_runs(instance):
                    progress.console.print(f"run {run_id[:8]}: its process is gone; marked failed")
        if daemon and not announced:
            progress.console.print("a Dagster daemon executes it; following")
            announced = True
        iterated = not daemon and driver.iterate(backfill, _progress_mark(instance.event_log_storage))
        if iterated or time.monotonic() - read_at >= _QUIET_READ_S:
            current = instance.get_backfill(backfill.backfill_id)
            assert current is not None
            backfill, read_at = current, time.monotonic()
            data = backfill.get_asset_backfill_data(graph)
            targeted = data.target_subset.num_partitions_and_non_partitioned_assets
            materialized = data.materialized_subset.num_partitions_and_non_partitioned_assets
            failed = data.failed_and_downstream_subset.num_partitions_and_non_partitioned_assets
            progress.update(task, completed=done_before + materialized + failed, description=label)
            if backfill.status in _TERMINAL:
                return backfill.status.value, targeted, materialized, failed
        time.sleep(_POLL_S)


def _failed_runs(instance: dg.DagsterInstance, backfill_id: str) -> tuple[FailedRun, ...]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}, statuses=[dg.DagsterRunStatus.FAILURE])
    )
    failed = []
    for run in runs:
        assets = ", ".join(sorted(key.to_user_string() for key in run.asset_selection or ()))
        partition = run.tags.get("dagster/partition", "")
        failed.append(
            FailedRun(run.run_id, assets, partition, failure_reason(run_events(instance, run.run_id)))
        )
    return tuple(failed)
