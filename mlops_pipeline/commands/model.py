"""``mlops model ...`` (registry aliases and their audit trail) and ``mlops reproduce``.

Mount in the main app with ``app.add_typer(model_app, name="model")`` and
``app.command("reproduce")(reproduce)``.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlops_pipeline.console import console, fail, settings_or_exit

if TYPE_CHECKING:
    from mlops_pipeline.training.tracking import Tracker

model_app = typer.Typer(
    help="Registered models: versions, aliases and their audit trail.", no_args_is_help=True
)

TeamOption = Annotated[str, typer.Option("--team", help="Team name")]
TickerOption = Annotated[str, typer.Option("--ticker", help="Ticker symbol")]


def _tracker() -> Tracker:
    from mlops_pipeline.resources.mlflow_tracking import mlflow_tracking_from_settings

    return mlflow_tracking_from_settings(settings_or_exit()).tracker()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@model_app.command("list")
def list_versions(team: TeamOption, ticker: TickerOption) -> None:
    """Versions of <team>-<TICKER> with their aliases and headline metrics, then the alias audit trail."""
    from mlops_pipeline.model_registry import TrackingError, registered_model_name

    tracker, name = _tracker(), registered_model_name(team, ticker.upper())
    try:
        aliases = tracker.aliases(name)
        if not aliases and not tracker.versions(name):
            fail(f"no registered model {name}")
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        table = Table(title=name)
        for column in ("version", "aliases", "run", "data_version", "mae", "directional_accuracy", "gate"):
            table.add_column(column)
        for version in tracker.versions(name):
            tags = version.tags
            table.add_row(
                str(version.version),
                ", ".join(sorted(by_version.get(str(version.version), []))),
                str(version.run_id),
                tags.get("data_version", ""),
                tags.get("metric.mae", ""),
                tags.get("metric.directional_accuracy", ""),
                tags.get("promotion.reason", ""),
            )
        console.print(table)
        trail = Table(title="alias moves")
        for column in ("at", "alias", "from", "to", "actor", "reason"):
            trail.add_column(column)
        for entry in tracker.audit_trail(name):
            trail.add_row(
                *(str(entry.get(key) or "") for key in ("at", "alias", "from", "to", "actor", "reason"))
            )
        console.print(trail)
    except TrackingError as exc:
        fail(str(exc))


@model_app.command("promote")
def promote(
    team: TeamOption,
    ticker: TickerOption,
    version: Annotated[
        str | None, typer.Option("--version", help="Version to promote (default: challenger)")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded in the audit trail")] = "manual promotion",
) -> None:
    """Point champion at a version (default: the current challenger), bypassing the gate."""
    from mlops_pipeline.model_registry import CHALLENGER, CHAMPION, TrackingError, registered_model_name

    tracker, name = _tracker(), registered_model_name(team, ticker.upper())
    try:
        target = version or tracker.aliases(name).get(CHALLENGER)
        if target is None:
            fail(f"{name} has no {CHALLENGER} version; pass --version")
        tracker.version(name, target)
        entry = tracker.move_alias(name, CHAMPION, target, actor=_actor(), reason=reason)
    except TrackingError as exc:
        fail(str(exc))
    console.print(f"{name}: {CHAMPION} {entry['from'] or 'none'} -> {entry['to']}")


@model_app.command("rollback")
def rollback(
    team: TeamOption,
    ticker: TickerOption,
    version: Annotated[
        str | None, typer.Option("--version", help="Version to restore (default: the previous champion)")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded in the audit trail")] = "rollback",
) -> None:
    """Point champion back at the version it held before its last move (or at --version)."""
    from mlops_pipeline.model_registry import CHAMPION, TrackingError, registered_model_name

    tracker, name = _tracker(), registered_model_name(team, ticker.upper())
    try:
        target = version
        if target is None:
            moves = [entry for entry in tracker.audit_trail(name) if entry["alias"] == CHAMPION]
            if not moves or not moves[-1]["from"]:
                fail(f"{name}: no previous {CHAMPION} to roll back to; pass --version")
            target = moves[-1]["from"]
        tracker.version(name, target)
        entry = tracker.move_alias(name, CHAMPION, target, actor=_actor(), reason=reason)
    except TrackingError as exc:
        fail(str(exc))
    console.print(f"{name}: {CHAMPION} {entry['from'] or 'none'} -> {entry['to']}")


def reproduce(
    run_id: Annotated[str, typer.Option("--run-id", help="MLflow run id of a training run")],
) -> None:
    """Pull the run's dataset and models via DVC, re-score them and compare with the logged metrics."""
    from mlops_pipeline.model_registry import TrackingError
    from mlops_pipeline.resources.dvc_versioning import dvc_versioning_from_settings
    from mlops_pipeline.resources.mlflow_tracking import mlflow_tracking_from_settings
    from mlops_pipeline.training.reproduce import ReproductionError, reproduce_run
    from mlops_pipeline.training.versioning import VersioningError

    settings = settings_or_exit()
    tracker = mlflow_tracking_from_settings(settings).tracker()
    try:
        result = reproduce_run(tracker, dvc_versioning_from_settings(settings).store(), run_id)
    except (TrackingError, VersioningError, ReproductionError, KeyError) as exc:
        fail(f"cannot reproduce run {run_id}: {exc}")
    table = Table(title=f"run {run_id}: dataset {result.dataset_md5}, model {result.model_md5}")
    for column in ("metric", "logged", "recomputed", "equal"):
        table.add_column(column)
    for name, value in sorted(result.recomputed.items()):
        logged = result.logged.get(name)
        equal = "n/a" if logged is None else str(name not in result.mismatches)
        table.add_row(name, "" if logged is None else repr(logged), repr(value), equal)
    console.print(table)
    if not result.identical:
        fail(f"{len(result.mismatches)} metric(s) differ from the logged run")
    console.print("all logged metrics reproduced exactly")
