"""The daily loop as one call: shared market data for every ticker, then every team's assets.

Each (job, ticker) is its own Dagster run on the configured instance, so the runs, their logs and
the asset history all appear in the UI afterwards. A ticker whose market data fails is skipped by
every team; one team's failure never stops another team.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlops_pipeline.assets.common import AS_OF_TAG, SETTINGS_TAG, WAITING
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.defs_builder import (
    LEADERBOARD_JOB,
    MARKET_JOB,
    TEAM_STAGES,
    all_tickers,
    build_definitions,
    team_job_name,
)
from mlops_pipeline.market.calendar import (
    holiday_name,
    is_trading_day,
    last_completed_trading_day,
)
from mlops_pipeline.resources.market_data import market_data_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox_service import ensure_sandbox, set_sandbox_today, uses_sandbox

_QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
_RECORDED_SETTINGS = (
    "storage",
    "market_data",
    "broker",
    "mlflow_tracking_uri",
    "dvc_remote_url",
    "serving_launcher",
)


class DailyRunError(RuntimeError):
    """The daily loop could not start (bad date, unreachable service)."""


@dataclass(frozen=True)
class PartitionRun:
    job: str
    partition: str
    status: str  # "success" | "waiting" | "failure" | "skipped"
    seconds: float
    run_id: str | None
    note: str = ""


@dataclass
class DailyRunReport:
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
    def complete(self) -> bool:
        """Nothing failed and nothing waits: the day is done."""
        return self.ok and self.waiting_count == 0

    @property
    def total_count(self) -> int:
        return len(self.runs)

    @property
    def ok(self) -> bool:
        return self.failed_count == 0

    def render(self) -> Table:
        succeeded = self.total_count - self.failed_count - self.waiting_count
        waiting = f", {self.waiting_count} waiting" if self.waiting_count else ""
        table = Table(title=f"Daily loop for {self.as_of} ({succeeded}/{self.total_count} ok{waiting})")
        for column in ("job", "ticker", "status", "seconds", "run id", "note"):
            table.add_column(column)
        style = {"success": "green", "waiting": "cyan", "failure": "red", "skipped": "yellow"}
        for run in self.runs:
            table.add_row(
                run.job, run.partition, f"[{style[run.status]}]{run.status}[/]", f"{run.seconds:.1f}",
                (run.run_id or "")[:8], run.note,
            )  # fmt: skip
        return table

    def locations(self) -> list[tuple[str, str]]:
        s = self.settings
        objects = s.storage_root_path if s.storage == "local" else f"s3://{s.s3_bucket}/{s.s3_prefix}"
        return [
            ("market prices", f"{objects}/market/prices/<TICKER>.parquet"),
            ("market features", f"{objects}/market/features/<TICKER>.parquet"),
            ("team datasets", f"{objects}/teams/<team>/datasets/<TICKER>.parquet"),
            ("predictions", f"{objects}/teams/<team>/predictions/<TICKER>.parquet"),
            ("trading journal", f"{objects}/teams/<team>/journal/"),
            ("monitoring reports", f"{objects}/teams/<team>/monitoring/index.html"),
            ("leaderboard", f"{objects}/competition/leaderboard.html  (or: mlops leaderboard)"),
            ("MLflow", f"{s.mlflow_tracking_uri}  (mlflow ui --backend-store-uri {s.mlflow_tracking_uri})"),
            ("model servers", "keep running as the teams' deployments; mlops stop stops them"),
            ("Dagster instance (runs, logs, asset history)", str(s.dagster_home_path)),
            ("Dagster UI", "make ui  (or: .venv/bin/mlops ui), then open http://127.0.0.1:3000"),
        ]


def _error_text(result: dg.ExecuteInProcessResult) -> str:
    """The root cause of the first failed step, in one line (the full trace is in the run's logs)."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        if error is not None:
            while error.cause is not None:
                error = error.cause
            message = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
            return message[:200]
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation is not None and not evaluation.passed and evaluation.blocking:
                return f"blocking check {evaluation.check_name!r} failed"
    return "failed (see the run's logs in the UI)"


def _waiting_note(result: dg.ExecuteInProcessResult) -> str | None:
    """Why a successful run materialized nothing and waits (an observation's ``waiting`` metadata)."""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            observation = event.event_specific_data.asset_observation  # type: ignore[union-attr]
            waiting = observation.metadata.get(WAITING)
            if waiting is not None:
                return str(waiting.value)[:300]
    return None


def _resolve_as_of(settings: PlatformSettings, sandbox_url: str | None, requested: date | None) -> date:
    if requested is not None:
        if not is_trading_day(requested):
            reason = holiday_name(requested) or "a weekend"
            raise DailyRunError(f"{requested} is not an NYSE trading day ({reason})")
        if sandbox_url and settings.market_data == "sandbox":
            set_sandbox_today(sandbox_url, requested)
            return requested
        latest = last_completed_trading_day()
        if requested > latest:
            raise DailyRunError(f"{requested} is after the last completed session {latest}")
        return requested
    resource = market_data_from_settings(
        settings.model_copy(update={"sandbox_url": sandbox_url}) if sandbox_url else settings
    )
    return resource.default_as_of()


STAGES: tuple[str, ...] = ("market", *(stage.suffix for stage in TEAM_STAGES), "rank")


@dataclass(frozen=True)
class _Step:
    job: str
    partition: str | None
    team: str | None
    blocked_by: str | None = None  # a job of the same team whose failure makes this step pointless


def plan_steps(teams: dict[str, TeamConfig], stages: tuple[str, ...] = STAGES) -> list[_Step]:
    """Every run of one day, in order: market data, then each team's stages, then the leaderboard."""
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise DailyRunError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    steps = [_Step(MARKET_JOB, ticker, None) for ticker in all_tickers(teams)] if "market" in stages else []
    for name, team in teams.items():
        serve_job = team_job_name(name, TEAM_STAGES[1])
        for stage in TEAM_STAGES:
            if stage.suffix not in stages:
                continue
            job = team_job_name(name, stage)
            blocked_by = serve_job if stage.suffix == "predict" else None
            if stage.per_ticker:
                steps += [_Step(job, ticker, name, blocked_by) for ticker in team.tickers]
            else:
                steps.append(_Step(job, None, name, blocked_by))
    if "rank" in stages:
        steps.append(_Step(LEADERBOARD_JOB, None, None))
    return steps


def _skip(
    step: _Step, market_outcome: dict[str, str], failed_jobs: set[tuple[str | None, str]]
) -> tuple[str, str] | None:
    """``(status, note)`` of a step that need not run: its ticker's market data failed or waits, or
    a job it depends on failed."""
    if step.partition is not None and step.job != MARKET_JOB and step.partition in market_outcome:
        status = market_outcome[step.partition]
        verb = "waits" if status == "waiting" else "failed"
        return ("waiting" if status == "waiting" else "skipped"), f"market data {verb} for this ticker"
    if step.blocked_by is not None and (step.team, step.blocked_by) in failed_jobs:
        return "skipped", f"{step.blocked_by} failed"
    return None


def run_daily(
    settings: PlatformSettings,
    teams: dict[str, TeamConfig],
    as_of: date | None = None,
    console: Console | None = None,
    stages: tuple[str, ...] = STAGES,
) -> DailyRunReport:
    """Run one trading date: market data for every ticker, then each team's stages, then the leaderboard."""
    steps = plan_steps(teams, stages)
    console = console or Console(quiet=True)
    with ExitStack() as stack:
        sandbox_url = stack.enter_context(ensure_sandbox(settings)) if uses_sandbox(settings) else None
        if sandbox_url:
            settings = settings.model_copy(update={"sandbox_url": sandbox_url})
        day = _resolve_as_of(settings, sandbox_url, as_of)
        defs = build_definitions(settings, teams)
        instance = stack.enter_context(dg.DagsterInstance.get())
        report = DailyRunReport(as_of=day, settings=settings)
        recorded = {name: settings.redacted()[name] for name in _RECORDED_SETTINGS}
        base_tags = {AS_OF_TAG: day.isoformat(), SETTINGS_TAG: json.dumps(recorded, sort_keys=True)}
        market_outcome: dict[str, str] = {}  # ticker -> "waiting" | "failure"
        failed_jobs: set[tuple[str | None, str]] = set()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"daily loop {day}", total=len(steps))
            for step in steps:
                label = step.partition or "-"
                progress.update(task, description=f"{step.job} [{label}]")
                skip = _skip(step, market_outcome, failed_jobs)
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
                waiting = _waiting_note(result) if result.success else None
                if waiting is not None:
                    if step.job == MARKET_JOB and step.partition is not None:
                        market_outcome[step.partition] = "waiting"
                    report.runs.append(
                        PartitionRun(step.job, label, "waiting", seconds, result.run_id, waiting)
                    )
                elif result.success:
                    report.runs.append(PartitionRun(step.job, label, "success", seconds, result.run_id))
                else:
                    failed_jobs.add((step.team, step.job))
                    if step.job == MARKET_JOB and step.partition is not None:
                        market_outcome[step.partition] = "failure"
                    note = _error_text(result)
                    report.runs.append(PartitionRun(step.job, label, "failure", seconds, result.run_id, note))
                progress.advance(task)
        return report


def replay_days(settings: PlatformSettings, start: date, end: date) -> list[date]:
    """The NYSE sessions from ``start`` to ``end`` to replay.

    On the sandbox market the replay moves the sandbox's clock through the range; on AlphaVantage
    each session reads the history up to that session, so the range must end by the last
    completed session.
    """
    from mlops_pipeline.market.calendar import trading_days
    from mlops_pipeline.sandbox.config import SandboxConfig

    if end < start:
        raise DailyRunError(f"--to {end} is before --from {start}")
    if settings.market_data == "sandbox":
        history_start = SandboxConfig().market_start
        if start < history_start:
            raise DailyRunError(
                f"--from {start} is before the sandbox's history, which starts {history_start}"
            )
    else:
        latest = last_completed_trading_day()
        if end > latest:
            raise DailyRunError(f"--to {end} is after the last completed session {latest}")
    try:
        days = [stamp.date() for stamp in trading_days(start, end)]
    except ValueError as exc:
        raise DailyRunError(str(exc)) from exc
    if not days:
        raise DailyRunError(f"no NYSE trading day between {start} and {end}")
    return days


def replay(
    settings: PlatformSettings,
    teams: dict[str, TeamConfig],
    start: date,
    end: date,
    console: Console | None = None,
    stages: tuple[str, ...] = STAGES,
) -> list[DailyRunReport]:
    """Run the real daily loop for every session from ``start`` to ``end``.

    A day whose loop completed (nothing failed, nothing waits) is recorded (``platform/replays/``)
    and skipped when the replay runs again, so an interrupted replay resumes where it stopped;
    other days run again.
    """
    days = replay_days(settings, start, end)
    console = console or Console(quiet=True)
    store = object_store_from_settings(settings)
    reports = []
    with ExitStack() as stack:
        if uses_sandbox(settings):
            sandbox_url = stack.enter_context(ensure_sandbox(settings))
            settings = settings.model_copy(update={"sandbox_url": sandbox_url})
        for day in days:
            marker = _replay_marker(teams, stages, day)
            if store.exists(marker):
                console.print(f"{day}: already replayed")
                continue
            report = run_daily(settings, teams, as_of=day, console=console, stages=stages)
            waiting = f", {report.waiting_count} waiting" if report.waiting_count else ""
            console.print(
                f"{day}: {report.total_count - report.failed_count - report.waiting_count}/"
                f"{report.total_count} ok{waiting}"
            )
            if report.complete:
                store.put_text(marker, json.dumps({"as_of": day.isoformat(), "runs": report.total_count}))
            reports.append(report)
    return reports


def _replay_marker(teams: dict[str, TeamConfig], stages: tuple[str, ...], day: date) -> str:
    """One record per (teams and their config hashes, stages, day): a changed config replays again."""
    identity = json.dumps({name: team.config_hash for name, team in sorted(teams.items())}) + ",".join(stages)
    return f"platform/replays/{hashlib.sha256(identity.encode()).hexdigest()[:12]}/{day.isoformat()}.json"
