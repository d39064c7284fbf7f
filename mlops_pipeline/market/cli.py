"""``market`` commands: manage the shared market data (seed price histories from CSV files)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_pipeline.console import console, err_console, settings_or_exit, usage_error

if TYPE_CHECKING:
    from mlops_pipeline.config.settings import PlatformSettings
    from mlops_pipeline.market.importing import SymbolImport

market_app = typer.Typer(no_args_is_help=True)


@market_app.callback()
def market() -> None:
    """Shared market data: seed the stored price histories."""


@market_app.command("import")
def import_command(
    directory: Annotated[
        Path, typer.Argument(help="Folder with <SYMBOL>.csv files (AlphaVantage daily-adjusted CSV).")
    ],
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Comma-separated symbols (default: every *.csv file).")
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Drop rows after this date (default: the last completed NYSE session).",
        ),
    ] = None,
) -> None:
    """Seed the stored price histories from TIME_SERIES_DAILY_ADJUSTED CSV files.

    Each file is checked like fetched data and merged with the stored history: stored adjusted rows
    win; a raw-price history (free key) is replaced by the file for the dates it covers.

    A file that fails is not stored, the others are; the exit code is then 1.
    """
    from rich.markup import escape

    from mlops_pipeline.market.importing import PriceImportError, import_prices
    from mlops_pipeline.resources.object_store import object_store_from_settings

    settings = settings_or_exit()
    store = object_store_from_settings(settings)
    wanted = [symbol for symbol in symbols.split(",") if symbol.strip()] if symbols is not None else None
    try:
        outcomes = import_prices(
            store, directory, symbols=wanted, until=until.date() if until is not None else None
        )
    except PriceImportError as error:
        usage_error(str(error))
    for outcome in outcomes:
        if not outcome.ok:
            err_console.print(
                f"[bold red]{outcome.symbol}: not imported:[/] {escape(str(outcome.error))}", soft_wrap=True
            )
            continue
        line = (
            f"{outcome.symbol}: {outcome.rows} rows {outcome.first_date}..{outcome.last_date}, "
            f"{outcome.added} added, {outcome.revisions} revision(s)"
        )
        if outcome.dropped_after_until:
            line += f", {outcome.dropped_after_until} row(s) after {outcome.last_date} dropped"
        console.print(escape(line), soft_wrap=True)
    recorded = _record_in_dagster(settings, [outcome for outcome in outcomes if outcome.ok])
    if recorded:
        console.print(f"recorded as market/prices materializations: {', '.join(recorded)}", soft_wrap=True)
    failed = [outcome.symbol for outcome in outcomes if not outcome.ok]
    summary = f"imported {len(outcomes) - len(failed)} of {len(outcomes)} symbol(s) from {directory}"
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    console.print(escape(summary), soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _record_in_dagster(settings: PlatformSettings, imported: list[SymbolImport]) -> list[str]:
    """Record each imported snapshot whose ticker and session are partitions on the Dagster instance;
    the partition keys recorded."""
    import dagster as dg

    from mlops_pipeline.assets.market import record_imported_prices
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.platform import load_platform

    try:
        platform = load_platform(settings)
    except ConfigError:
        return []  # the teams do not load: nothing is partitioned yet
    ensure_home(settings)
    recorded = []
    with dg.DagsterInstance.get() as instance:
        for outcome in imported:
            session = outcome.last_date
            if session is None or outcome.symbol not in platform.tickers:
                continue
            if not platform.first_session <= session <= platform.last_session:
                continue
            record_imported_prices(
                instance,
                outcome.symbol,
                session,
                {**outcome.manifest, "uri": outcome.uri or "", "rows": outcome.rows},
            )
            recorded.append(f"{session}|{outcome.symbol}")
    return recorded
