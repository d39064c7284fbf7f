"""``mlops``: the platform's command line (run sessions, open the UI, inspect config).

Every command imports what it needs when it runs: ``mlops --help`` and ``mlops X --help`` load
neither Dagster nor pandas. Usage errors (bad options, a date that is no session, an unknown team,
invalid settings or overlays) exit 2; failures while running exit 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlops_pipeline.commands.competition import leaderboard_command, teams_diff_command
from mlops_pipeline.commands.market import market_app
from mlops_pipeline.commands.model import model_app, reproduce
from mlops_pipeline.commands.monitoring import monitoring_app
from mlops_pipeline.console import (
    RUNTIME_FAILURE,
    console,
    err_console,
    fail,
    labelled,
    settings_or_exit,
    teams_or_exit,
    usage_error,
)
from mlops_pipeline.monitoring.defaults import DEFAULT_EVIDENTLY_PORT
from mlops_pipeline.processes import alive
from mlops_pipeline.s3.cli import storage_app
from mlops_pipeline.sandbox.cli import sandbox_app
from mlops_pipeline.serving.cli import serve
from mlops_pipeline.stages import STAGES

if TYPE_CHECKING:
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.config.platform import Platform
    from mlops_pipeline.config.settings import PlatformSettings

app = typer.Typer(
    name="mlops",
    help="Daily stock prediction and paper trading for competing teams, on Dagster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)
teams_app = typer.Typer(help="Check and inspect team overlays.", no_args_is_help=True)


def _env_name(field_name: str) -> str:
    from mlops_pipeline.config.settings import PlatformSettings

    field = PlatformSettings.model_fields[field_name]
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"MLOPS_{field_name.upper()}"


@config_app.command("show")
def config_show(
    team: Annotated[str | None, typer.Option("--team", help="Show this team's resolved overlay")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print the resolved settings (secrets masked), or one team's resolved config and its hash."""
    import yaml

    settings = settings_or_exit()
    if team:
        config = teams_or_exit(settings, only=[team])[team]
        payload = config.model_dump(mode="json")
        if as_json:
            console.print_json(json.dumps({"config_hash": config.config_hash, "config": payload}))
            return
        console.print(f"# team {team}: resolved from teams/base.yaml + teams/{team}.yaml")
        console.print(f"# config_hash: {config.config_hash}")
        console.print(yaml.safe_dump(payload, sort_keys=False).rstrip())
        return
    redacted = settings.redacted()
    if as_json:
        console.print_json(json.dumps(redacted))
        return
    table = Table(title="Platform settings (env / .env; secrets masked)")
    table.add_column("variable")
    table.add_column("value")
    for name, value in redacted.items():
        table.add_row(_env_name(name), "" if value is None else str(value))
    console.print(table)


@teams_app.command("validate")
def teams_validate() -> None:
    """Validate every overlay in the teams folder; list every problem with file and key (exit 1)."""
    settings = settings_or_exit()
    blocked: dict[str, ConfigError] = {}
    teams = teams_or_exit(settings, blocked=blocked, code=RUNTIME_FAILURE)
    table = Table(title=f"{len(teams)} team(s) valid in {settings.teams_path}")
    for column in ("team", "tickers", "ludwig config", "strategy", "config hash"):
        table.add_column(column)
    for name, config in teams.items():
        table.add_row(
            name,
            ", ".join(config.tickers),
            config.model.ludwig_config,
            config.strategy.name,
            config.config_hash,
        )
    console.print(table)
    if blocked:
        fail("\n".join(f"team {name}: {error}" for name, error in blocked.items()))


def _platform_or_exit(
    settings: PlatformSettings,
    sources: dict[str, str] | None = None,
    blocked: dict[str, ConfigError] | None = None,
) -> Platform:
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.config.platform import load_platform

    try:
        return load_platform(settings, sources=sources, blocked=blocked)
    except ConfigError as exc:
        usage_error(f"invalid team configuration ({len(exc.issues)} problem(s)):\n{exc}")


def _chosen_teams(platform: Platform, names: list[str] | None) -> list[str]:
    unknown = sorted(set(names or []) - set(platform.teams))
    if unknown:
        usage_error(f"unknown team(s) {', '.join(unknown)}; teams: {', '.join(platform.teams)}")
    return list(names or platform.teams)


StageName = Enum("StageName", {name: name for name in STAGES}, type=str)  # type: ignore[misc]


TeamOption = Annotated[
    list[str] | None,
    typer.Option("--team", metavar="TEAM", help="Only this team (repeatable; default: every team)"),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Also run the steps whose partitions are up to date")
]


def _session_option(name: str, help_text: str) -> Any:
    return typer.Option(name, formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help=help_text)


@app.command("run")
def run(
    team: TeamOption = None,
    as_of: Annotated[
        datetime | None, _session_option("--date", "The session (default: the last completed session)")
    ] = None,
    config_ref: Annotated[
        str | None,
        typer.Option("--config-ref", metavar="REF", help="Read the --team's overlay from this git ref"),
    ] = None,
    stage: Annotated[
        list[StageName] | None,
        typer.Option("--stage", metavar="STAGE", help=f"Only this stage (repeatable): {', '.join(STAGES)}"),
    ] = None,
    force: ForceOption = False,
) -> None:
    """Run one session's partitions: shared market data, then each team's stages, then the leaderboard."""
    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.platform import SessionError
    from mlops_pipeline.sandbox_service import SandboxUnavailableError
    from mlops_pipeline.session_runner import SessionRunError, run_session

    settings = settings_or_exit()
    sources: dict[str, str] = {}
    if config_ref is not None:
        if not team or len(team) != 1:
            usage_error("--config-ref needs exactly one --team")
        sources[team[0]] = f"git:{config_ref}"
    blocked: dict[str, ConfigError] = {}
    platform = _platform_or_exit(settings, sources, blocked)
    for name, error in blocked.items():
        err_console.print(labelled(f"team {name} blocked:", str(error)), soft_wrap=True)
    chosen = [name for name in (team or platform.teams) if name not in blocked]
    if not chosen:
        fail("no team left to run")
    chosen = _chosen_teams(platform, chosen)
    day = as_of.date() if as_of is not None else platform.last_session
    try:
        platform.check_session(day)
    except SessionError as exc:
        usage_error(str(exc))
    ensure_home(settings)
    try:
        report = run_session(
            platform,
            day,
            chosen,
            console=console,
            stages=tuple(item.value for item in stage) if stage else STAGES,
            force=force,
        )
    except (SessionRunError, SandboxUnavailableError) as exc:
        fail(str(exc))
    console.print(report.render())
    for what, where in report.locations():
        console.print(f"  {what}: {where}")
    if not report.ok:
        for failed in report.runs:
            if failed.status in ("failure", "skipped"):
                err_console.print(labelled(f"{failed.job} {failed.partition}:", failed.note), soft_wrap=True)
        fail(f"{report.failed_count} of {report.total_count} run(s) failed; see above")
    if blocked:
        fail(f"team(s) {', '.join(blocked)} blocked by their configuration; see above")


@app.command("compete")
def compete(
    start: Annotated[datetime, _session_option("--from", "The first session")],
    end: Annotated[datetime, _session_option("--to", "The last session")],
    team: TeamOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Materialize every partition again, missing, outdated or not")
    ] = False,
) -> None:
    """Replay a range of sessions as one Dagster backfill (listed on the UI's backfills page); run
    again, it carries on an unfinished one and skips what is materialized."""
    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.platform import SessionError
    from mlops_pipeline.instance import open_instance
    from mlops_pipeline.replay import ReplayError, replay, start_launching
    from mlops_pipeline.run_launcher import fail_orphaned_runs
    from mlops_pipeline.sandbox_service import SandboxUnavailableError, ensure_sandbox, uses_sandbox

    settings = settings_or_exit()
    platform = _platform_or_exit(settings)
    chosen = _chosen_teams(platform, team)
    first, last = start.date(), end.date()
    try:
        platform.check_range(first, last)
    except SessionError as exc:
        usage_error(str(exc))
    ensure_home(settings)
    with contextlib.ExitStack() as stack:
        try:
            instance = stack.enter_context(open_instance())
            start_launching(instance)  # the run processes' imports, while the sandbox starts
            if uses_sandbox(settings):  # the runs this process launches reach the same sandbox
                os.environ["MLOPS_SANDBOX_URL"] = stack.enter_context(ensure_sandbox(settings))
            for run_id in fail_orphaned_runs(instance):
                console.print(f"run {run_id[:8]} of a process that is gone: marked failed")
            report = replay(instance, platform, first, last, chosen, console=console, everything=force)
        except (ReplayError, SandboxUnavailableError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail(
                "interrupted: the backfill stays requested; `mlops compete` with the same range carries it "
                "on, and so does the daemon of `mlops ui` (cancel it on the UI's backfills page)"
            )
    for session in report.sessions:
        if session.backfill_id is None:
            console.print(f"{session.day}: already materialized ({session.targeted} asset partitions)")
            continue
        console.print(
            f"{session.day}: backfill {session.backfill_id} {session.status.lower()}, "
            f"{session.materialized} of {session.targeted} asset partitions materialized"
        )
        for failed in session.failed_runs:
            where = f"run {failed.run_id[:8]} {failed.assets} {failed.partition}:"
            err_console.print(labelled(where, failed.error), soft_wrap=True)
    failed_sessions = [str(session.day) for session in report.sessions if not session.ok]
    console.print(
        f"replayed {len(report.sessions)} session(s) from {first} to {last} in {report.seconds:.0f} s"
    )
    if failed_sessions:
        fail(f"{len(failed_sessions)} session(s) had failures ({', '.join(failed_sessions)}); see above")
    if all(session.backfill_id is None for session in report.sessions):
        console.print("every partition was already materialized (--force materializes them again)")


_COMPONENTS = (
    "mlops-pipeline",
    "dagster",
    "mlflow",
    "ludwig",
    "torch",
    "dvc",
    "evidently",
    "alpaca-py",
    "boto3",
    "minio",
)


@app.command("version")
def version(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The platform's version and the versions of the tools it drives."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    versions = {"python": platform.python_version()}
    for name in _COMPONENTS:
        try:
            versions[name] = installed(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    if as_json:
        console.print_json(json.dumps(versions))
        return
    for name, value in versions.items():
        console.print(f"{name} {value}")


@app.command("stop")
def stop(
    team: Annotated[list[str] | None, typer.Option("--team", help="Only this team (repeatable)")] = None,
) -> None:
    """Stop the teams' model servers (started by <team>/serving); the next run deploys again."""
    from mlops_pipeline.resources.object_store import object_store_from_settings
    from mlops_pipeline.serving.deployment import stop_deployment
    from mlops_pipeline.serving.launch import Deployment
    from mlops_pipeline.team_store import LIVE_DEPLOYMENT_KEY, team_store

    settings = settings_or_exit()
    store = object_store_from_settings(settings)
    for name in teams_or_exit(settings, only=team):
        scoped = team_store(store, name)
        deployment = Deployment.stored(scoped, LIVE_DEPLOYMENT_KEY)
        if deployment is None:
            console.print(f"{name}: no model server")
            continue
        stop_deployment(deployment)
        scoped.delete(LIVE_DEPLOYMENT_KEY)
        console.print(
            f"{name}: stopped {deployment.launcher} {deployment.instance_id} ({deployment.endpoint_url})"
        )


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option(help="Dagster webserver port on 127.0.0.1")] = 3000,
    evidently_port: Annotated[
        int, typer.Option(help="evidently UI port on 127.0.0.1 (monitoring dashboards and snapshots)")
    ] = DEFAULT_EVIDENTLY_PORT,
) -> None:
    """Start the Dagster webserver and daemon, and the evidently UI, on 127.0.0.1 (embedded instance)."""
    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.instance import open_instance
    from mlops_pipeline.sandbox_service import SandboxUnavailableError, ensure_sandbox, uses_sandbox

    # SIGTERM stops the UI as Ctrl-C does, from the first moment (children are started below), and
    # so does SIGINT even where it came in ignored (a shell's background job): the children would
    # inherit that, and `dagster dev` then ignores SIGTERM as well.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = settings_or_exit()
    teams_or_exit(settings)
    ensure_home(settings)
    with open_instance():  # its storage exists before the webserver, the daemon or a run opens it
        pass
    env = dict(os.environ)
    children: list[subprocess.Popen] = []
    with contextlib.ExitStack() as stack, contextlib.suppress(KeyboardInterrupt):
        if uses_sandbox(settings):
            try:
                env["MLOPS_SANDBOX_URL"] = stack.enter_context(ensure_sandbox(settings))
            except SandboxUnavailableError as exc:
                fail(str(exc))
        # Stopped before the sandbox: the servers may still be talking to it.
        stack.callback(_stop_process_groups, children)
        if settings.evidently_url:
            console.print(f"evidently UI: {settings.evidently_ui_url}  (MLOPS_EVIDENTLY_URL)")
        else:
            workspace = settings.evidently_workspace_path
            workspace.mkdir(parents=True, exist_ok=True)
            evidently_url = f"http://127.0.0.1:{evidently_port}"
            # the links in the runs' metadata point at this UI, unless set explicitly
            env.setdefault("MLOPS_EVIDENTLY_UI_URL", evidently_url)
            console.print(f"evidently UI: {evidently_url}  (workspace: {workspace})")
            evidently = [
                sys.executable, "-m", "evidently.cli", "ui", "--workspace", str(workspace),
                "--host", "127.0.0.1", "--port", str(evidently_port),
            ]  # fmt: skip
            children.append(subprocess.Popen(evidently, env=env, start_new_session=True))
        console.print(f"Dagster UI: http://127.0.0.1:{port}  (instance: {settings.dagster_home_path})")
        command = [
            sys.executable, "-m", "dagster", "dev",
            "-m", "mlops_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port),
        ]  # fmt: skip
        # Its own process group (webserver, daemon, code server, its gRPC server, the runs it
        # launches), so that stopping reaches every one of them.
        dagster = subprocess.Popen(command, env=env, start_new_session=True)
        children.append(dagster)
        dagster.wait()


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


UI_STOP_TIMEOUT_S = 6.0


def _stop_process_groups(children: list[subprocess.Popen], timeout_s: float = UI_STOP_TIMEOUT_S) -> None:
    """SIGTERM to each child's whole process group at once (`dagster dev` and its webserver,
    daemon and code servers stop cleanly on it); whatever still runs after ``timeout_s`` is killed.
    Interrupts are ignored meanwhile: a second Ctrl-C does not leave children behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(child.pid, group=True) for child in children):
        for child in children:
            child.poll()  # reap the leader, so that its group can empty
        time.sleep(0.1)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


# Registration order is the order of `mlops --help`.
app.command("serve")(serve)
app.command("leaderboard")(leaderboard_command)
app.command("reproduce")(reproduce)
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
app.add_typer(teams_app, name="teams")
teams_app.command("diff")(teams_diff_command)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(market_app, name="market")
app.add_typer(monitoring_app, name="monitoring")
app.add_typer(storage_app, name="storage")


def main() -> None:
    _quiet_libraries()
    app()


def _quiet_libraries() -> None:
    """Keep the terminal for the platform's own output: no per-request HTTP lines, no library hints."""
    import logging
    import warnings

    logging.getLogger("httpx").setLevel(logging.WARNING)
    for module in ("mlflow", "torch", "ludwig", "evidently", "sklearn"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


if __name__ == "__main__":
    main()
