"""``market`` commands: manage the shared market data (seed price histories from CSV files)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_pipeline.console import console, err_console, fail, labelled, settings_or_exit, usage_error

if TYPE_CHECKING:
    import pandas as pd

    from mlops_pipeline.config.settings import PlatformSettings
    from mlops_pipeline.market.importing import SymbolImport

market_app = typer.Typer(no_args_is_help=True)


@market_app.callback()
def market() -> None:
    """Shared market data: seed the stored price histories, record them for offline replays."""


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
                labelled(f"{outcome.symbol}: not imported:", str(outcome.error)), soft_wrap=True
            )
            continue
        line = (
            f"{outcome.symbol}: {outcome.rows} rows {outcome.first_date}..{outcome.last_date}, "
            f"{outcome.added} added, {outcome.revisions} revision(s)"
        )
        if outcome.dropped_after_until:
            line += f", {outcome.dropped_after_until} row(s) after {outcome.last_date} dropped"
        console.print(line, soft_wrap=True)
    recorded = _record_in_dagster(settings, [outcome for outcome in outcomes if outcome.ok])
    if recorded:
        console.print(f"recorded as market/prices materializations: {', '.join(recorded)}", soft_wrap=True)
    failed = [outcome.symbol for outcome in outcomes if not outcome.ok]
    summary = f"imported {len(outcomes) - len(failed)} of {len(outcomes)} symbol(s) from {directory}"
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    console.print(summary, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _record_in_dagster(settings: PlatformSettings, imported: list[SymbolImport]) -> list[str]:
    """Record each imported snapshot whose ticker and session are partitions on the Dagster instance;
    the partition keys recorded."""
    from mlops_pipeline.assets.market import record_imported_prices
    from mlops_pipeline.config.errors import ConfigError
    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.platform import load_platform
    from mlops_pipeline.instance import open_instance

    try:
        platform = load_platform(settings)
    except ConfigError:
        return []  # the teams do not load: nothing is partitioned yet
    ensure_home(settings)
    recorded = []
    with open_instance() as instance:
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


@market_app.command("record")
def record_command(
    *,
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated symbols to record.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write <SYMBOL>.csv recordings to.")],
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Last session recorded (default: the market data's today).",
        ),
    ] = None,
) -> None:
    """Record daily histories as AlphaVantage daily-adjusted CSV files, to replay them offline.

    With a premium key (or the sandbox) the full history is fetched, one request per symbol; with a
    free key the history the platform has stored is written. `mlops sandbox serve --recorded DIR`
    serves the folder, `mlops market import DIR` seeds another home from it.

    A symbol that fails is not written, the others are; the exit code is then 1.
    """

    from mlops_pipeline.market.importing import PriceImportError, symbol_for
    from mlops_pipeline.market.recording import RecordingError, write_recording
    from mlops_pipeline.sandbox_service import SandboxUnavailableError

    settings = settings_or_exit()
    try:
        wanted = list(dict.fromkeys(symbol_for(symbol) for symbol in symbols.split(",") if symbol.strip()))
    except PriceImportError as error:
        usage_error(f"--symbols: {error}")
    if not wanted:
        usage_error("--symbols needs comma-separated ticker symbols")
    try:
        histories = _histories_to_record(settings, wanted, until.date() if until is not None else None)
    except SandboxUnavailableError as error:
        fail(str(error))
    failed = []
    for symbol, history in histories.items():
        path = out / f"{symbol}.csv"
        try:
            if isinstance(history, str):
                raise RecordingError(history)
            rows = write_recording(history, path)  # refuses what the sandbox could not serve back
        except RecordingError as error:
            err_console.print(labelled(f"{symbol}: not recorded:", str(error)), soft_wrap=True)
            failed.append(symbol)
            continue
        first, last = history["date"].iloc[0].date(), history["date"].iloc[-1].date()
        console.print(f"{symbol}: {rows} sessions {first}..{last} -> {path}", soft_wrap=True)
    console.print(f"recorded {len(wanted) - len(failed)} of {len(wanted)} symbol(s) to {out}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _histories_to_record(
    settings: PlatformSettings, symbols: list[str], until: date | None
) -> dict[str, pd.DataFrame | str]:
    """Each symbol's history up to ``until`` (canonical frame, oldest first), or why there is none.

    Premium data (the sandbox, a premium key): the full adjusted series, fetched. A free key: the
    newest stored snapshot, since a free key cannot fetch more than the last 100 sessions.
    """
    from contextlib import nullcontext

    from mlops_pipeline.market.alphavantage import AlphaVantageError
    from mlops_pipeline.market.calendar import last_completed_trading_day
    from mlops_pipeline.market.importing import history_until
    from mlops_pipeline.market.store import latest_prices
    from mlops_pipeline.resources.market_data import market_data_from_settings
    from mlops_pipeline.resources.object_store import object_store_from_settings
    from mlops_pipeline.sandbox_service import ensure_sandbox, sandbox_today

    histories: dict[str, pd.DataFrame | str] = {}
    if settings.market_data == "alphavantage" and not settings.alphavantage_premium:
        store = object_store_from_settings(settings)
        for symbol in symbols:
            frame, _, _ = latest_prices(store, symbol, until)
            histories[symbol] = (
                "no stored history (a free key fetches only 100 sessions; run `mlops run` or "
                "`mlops market import` first)"
                if frame is None or frame.empty
                else frame
            )
        return histories
    sandbox = ensure_sandbox(settings) if settings.market_data == "sandbox" else nullcontext(None)
    with sandbox as url:
        resource = market_data_from_settings(settings)
        if url is not None:
            resource = resource.model_copy(update={"base_url": url})
        market_data = resource.process_config_and_initialize()
        session = until or (sandbox_today(url) if url else None) or last_completed_trading_day()
        for symbol in symbols:
            try:
                series = market_data.fetch_daily(symbol, "full", adjusted=True, session=session)
            except AlphaVantageError as error:
                histories[symbol] = str(error)
                continue
            history = history_until(series.frame, session)
            histories[symbol] = f"no session on or before {session}" if history.empty else history
    return histories
