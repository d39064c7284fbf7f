"""Seed stored price histories from AlphaVantage CSV files (``mlops market import DIR``).

Each file ``DIR/<SYMBOL>.csv`` holds exactly what AlphaVantage returns for
``function=TIME_SERIES_DAILY_ADJUSTED&datatype=csv`` (header
``timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient``, rows
newest first, CRLF or LF line ends). It is parsed by the client's own parser
(:func:`~mlops_pipeline.market.alphavantage.parse_daily_csv`), so a malformed file raises the
client's :class:`~mlops_pipeline.market.alphavantage.AlphaVantageParseError` naming the file, the
line and the field.

Rows after ``until`` (default: the last completed NYSE session) are dropped, and the adjusted closes
of the rows kept are un-adjusted for the splits and dividends of the dropped rows
(:func:`history_until`), as if the file had been downloaded on ``until``. The result is merged with
the symbol's newest stored snapshot on or before ``until`` (:func:`merge_imported`): **stored rows
win** for the dates they cover, because stored data normally came from the live source; imported
rows fill the sessions the stored history lacks (older ones, gaps, and newer ones), and every value
where the file differs from a stored row is counted as a revision. The merged history must pass the
price checks (:func:`~mlops_pipeline.market.checks.check_price_history`, with the history's own last
date as the expected last date, since an import has no as-of date); a symbol whose ERROR checks fail
is not stored. Each stored symbol is one atomic put of the history and its manifest, as the snapshot
of its last session (``market/prices/<SYMBOL>/<session>.parquet``); the next session's
``market/prices`` extends it. To replace stored rows with a file's, delete the snapshots first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_pipeline.market.alphavantage import DAILY_ADJUSTED, AlphaVantageParseError, parse_daily_csv
from mlops_pipeline.market.calendar import last_completed_trading_day
from mlops_pipeline.market.checks import CheckOutcome, check_price_history, failed_names
from mlops_pipeline.market.history import REVISION_COLUMNS, merge_history
from mlops_pipeline.market.ingest import extend_adjusted_history
from mlops_pipeline.market.schema import conform_price_frame
from mlops_pipeline.market.store import latest_prices, prices_key
from mlops_pipeline.market.tickers import TICKER_PATTERN
from mlops_pipeline.objects import Objects, ObjectStoreError
from mlops_pipeline.training.dataset import frame_fingerprint

SYMBOL_PATTERN = re.compile(TICKER_PATTERN)
CSV_SUFFIX = ".csv"
# Columns a raw-price stored history (free key) really carries; only these are compared with a file.
_RAW_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


class PriceImportError(ValueError):
    """The import as a whole cannot start (no such folder, no CSV file in it, an invalid symbol)."""


@dataclass(frozen=True)
class ImportMerge:
    """An imported history merged with the stored one.

    ``added`` counts the sessions the stored history did not have; ``revisions`` lists each value on a
    date both have where the stored row (``old``) and the file (``new``) differ (columns ``date``,
    ``column``, ``old``, ``new`` as in :attr:`~mlops_pipeline.market.history.HistoryMerge.revisions`).
    """

    history: pd.DataFrame
    added: int
    revisions: pd.DataFrame


@dataclass(frozen=True)
class SymbolImport:
    """The outcome of importing one symbol's file; ``error`` is set when nothing was stored."""

    symbol: str
    path: Path
    error: str | None = None
    rows: int = 0
    first_date: date | None = None
    last_date: date | None = None
    file_rows: int = 0
    dropped_after_until: int = 0
    added: int = 0
    revisions: int = 0
    failed_checks: tuple[CheckOutcome, ...] = ()
    uri: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def _invalid_symbol(name: str) -> str:
    return f"{name!r} is not a valid symbol (a letter, then up to 9 letters, digits or '.')"


def symbol_for(name: str) -> str:
    """The upper-cased symbol ``name`` stands for; ``PriceImportError`` unless it is a valid symbol."""
    symbol = name.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise PriceImportError(_invalid_symbol(name))
    return symbol


def discover_import_files(directory: Path, symbols: Sequence[str] | None = None) -> dict[str, Path]:
    """Symbol -> CSV file to import from ``directory``, in symbol order.

    Without ``symbols`` every ``*.csv`` file is taken; its symbol is the file stem, upper-cased, which
    :func:`import_symbol` then checks (a file whose name is not a valid symbol fails alone). With
    ``symbols`` only those are taken; a symbol without a file maps to the path it was expected at
    (``DIR/<SYMBOL>.csv``), which the import then reports as missing. Raises ``PriceImportError`` when
    ``directory`` is not a folder, holds no CSV file, a given symbol is not valid, or two files stand
    for the same symbol.
    """
    if not directory.is_dir():
        raise PriceImportError(f"{directory} is not a directory")
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix.lower() != CSV_SUFFIX:
            continue
        symbol = path.stem.strip().upper()
        if symbol in files:
            raise PriceImportError(f"{files[symbol]} and {path} are both files for {symbol}")
        files[symbol] = path
    if not files:
        raise PriceImportError(f"no *.csv files in {directory}")
    if symbols is None:
        return dict(sorted(files.items()))
    wanted = list(dict.fromkeys(symbol_for(symbol) for symbol in symbols))
    if not wanted:
        raise PriceImportError("no symbols given")
    return {symbol: files.get(symbol, directory / f"{symbol}{CSV_SUFFIX}") for symbol in sorted(wanted)}


def read_import_file(path: Path) -> pd.DataFrame:
    """The canonical price frame of an AlphaVantage daily-adjusted CSV file, oldest first.

    Raises ``AlphaVantageParseError`` (prefixed with the file's path, naming line and field) for a
    malformed file, ``OSError`` when it cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise AlphaVantageParseError(f"not a UTF-8 text file ({error.reason})", str(path)) from None
    return parse_daily_csv(text, DAILY_ADJUSTED, str(path))


def history_until(history: pd.DataFrame, until: date) -> pd.DataFrame:
    """``history`` as the provider would have served it on ``until``: later rows dropped, and the
    ``adjusted_close`` of the rows kept un-adjusted for the splits and dividends of the dropped rows
    (the inverse of the re-adjustment in :func:`~mlops_pipeline.market.history.merge_history`), so a
    later fetch that brings those actions again does not apply them twice.
    """
    frame = conform_price_frame(history)
    after = (frame["date"] > pd.Timestamp(until)).to_numpy()
    if not after.any():
        return frame
    dividend_factor = (1.0 - frame["dividend_amount"] / frame["close"].shift(1)).fillna(1.0)
    factor = float((dividend_factor / frame["split_coefficient"])[after].prod())
    kept = frame.loc[~after].reset_index(drop=True)
    kept["adjusted_close"] = kept["adjusted_close"] / factor
    return kept


def merge_imported(
    imported: pd.DataFrame, stored: pd.DataFrame | None, stored_adjusted: bool = True
) -> ImportMerge:
    """Merge an imported (adjusted) history with the stored history of the same symbol.

    With an adjusted stored history, stored rows win for every date they cover and imported rows fill
    the rest; ``adjusted_close`` values are re-adjusted so that the result stays continuous: stored
    rows for corporate actions in imported rows after the stored last date, imported rows for actions
    in stored rows the file does not have (both through :func:`merge_history`).

    A raw-price stored history (a free-key bootstrap) carries no adjustment data, so the file wins
    where both have a row; stored rows older than the file are re-adjusted for the file's actions,
    stored rows newer than the file extend it with inferred splits
    (:func:`~mlops_pipeline.market.ingest.extend_adjusted_history`). Only raw prices and volumes are
    compared then.
    """
    imported = conform_price_frame(imported)
    if stored is None or stored.empty:
        no_revisions = pd.DataFrame(columns=list(REVISION_COLUMNS)).astype(REVISION_COLUMNS)
        return ImportMerge(imported, len(imported), no_revisions)
    stored = conform_price_frame(stored)
    if stored_adjusted:
        stored_last = stored["date"].iloc[-1]
        live = merge_history(stored, imported[imported["date"] > stored_last]).history
        merged = merge_history(imported, live)
        history = merged.history
        # merge_history's old/new are the file's and the stored values here; report stored as old.
        revisions = merged.revisions.rename(columns={"old": "new", "new": "old"})[list(REVISION_COLUMNS)]
    else:
        imported_last = imported["date"].iloc[-1]
        base = merge_history(stored[stored["date"] <= imported_last], imported)
        history = base.history
        later = stored[stored["date"] > imported_last]
        if not later.empty:
            history = extend_adjusted_history(history, later).history
        revisions = base.revisions[base.revisions["column"].isin(_RAW_PRICE_COLUMNS)].reset_index(drop=True)
    added = int((~history["date"].isin(stored["date"])).sum())
    return ImportMerge(history, added, revisions)


def error_checks(outcomes: Sequence[CheckOutcome]) -> list[CheckOutcome]:
    """The failed checks of ERROR severity (those that keep a history from being stored)."""
    return [outcome for outcome in outcomes if not outcome.passed and outcome.severity == "ERROR"]


def describe_check(outcome: CheckOutcome) -> str:
    """``name: description (detail=value, ...)`` with the details that say what is wrong."""
    details = ", ".join(
        f"{key}={value}" for key, value in outcome.details.items() if value not in ([], {}, 0, None)
    )
    return f"{outcome.name}: {outcome.description}" + (f" ({details})" if details else "")


def import_symbol(
    store: Objects,
    symbol: str,
    path: Path,
    *,
    until: date,
    source: str,
    imported_at: datetime | None = None,
) -> SymbolImport:
    """Import ``path`` as the history of ``symbol``: parse, cut at ``until``, merge, check, store.

    Never raises for a bad file or a failed check: the returned ``SymbolImport`` has ``error`` set and
    the stored object is left untouched. On success the history is stored with one put.
    """
    failed = SymbolImport  # an outcome with ``error`` set; nothing stored
    if not SYMBOL_PATTERN.match(symbol):
        return failed(symbol, path, error=f"{path}: the file name is not a symbol: {_invalid_symbol(symbol)}")
    if not path.is_file():
        return failed(symbol, path, error=f"no file {path}")
    try:
        parsed = read_import_file(path)
    except (AlphaVantageParseError, OSError) as error:
        return failed(symbol, path, error=str(error))
    imported = history_until(parsed, until)
    dropped = len(parsed) - len(imported)
    if imported.empty:
        return failed(symbol, path, error=f"{path}: no rows on or before {until}", file_rows=len(parsed))
    try:
        stored, manifest, _ = latest_prices(store, symbol, until=until)
        merged = merge_imported(imported, stored, bool(manifest.get("adjusted", True)))
        history = merged.history
        first, last = history["date"].iloc[0].date(), history["date"].iloc[-1].date()
        outcomes = check_price_history(history, expected_last_date=pd.Timestamp(last))
    except (ObjectStoreError, ValueError) as error:
        return failed(symbol, path, error=f"{path}: {error}", file_rows=len(parsed))
    summary = {
        "rows": len(history),
        "first_date": first,
        "last_date": last,
        "file_rows": len(parsed),
        "dropped_after_until": dropped,
        "added": merged.added,
        "revisions": len(merged.revisions),
    }
    blocking = error_checks(outcomes)
    if blocking:
        reasons = "; ".join(describe_check(outcome) for outcome in blocking)
        return failed(
            symbol, path, error=f"{path}: failed check(s) {reasons}", failed_checks=tuple(blocking), **summary
        )
    new_manifest = {
        "ticker": symbol,
        "adjusted": True,
        "source": source,
        "as_of": last.isoformat(),
        "data_version": frame_fingerprint(history),
        "failed_checks": failed_names(outcomes),
        "imported_at": (imported_at or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    try:
        uri = store.put_parquet(prices_key(symbol, last), history, new_manifest)
    except ObjectStoreError as error:
        return failed(symbol, path, error=f"{path}: {error}", **summary)
    return SymbolImport(symbol, path, uri=uri, manifest=new_manifest, **summary)


def import_prices(
    store: Objects,
    directory: Path,
    *,
    symbols: Sequence[str] | None = None,
    until: date | None = None,
    imported_at: datetime | None = None,
) -> list[SymbolImport]:
    """Import every file of ``directory`` (or those of ``symbols``), one symbol after another.

    ``until`` defaults to the last completed NYSE session. Raises ``PriceImportError`` before anything
    is stored when the folder or the symbols are unusable (see :func:`discover_import_files`); a bad
    file only fails its own symbol. The manifest's source is ``import:<folder name>``.
    """
    directory = Path(directory)
    files = discover_import_files(directory, symbols)
    last_day = until or last_completed_trading_day()
    stamp = imported_at or datetime.now(UTC)
    source = f"import:{directory.resolve().name}"
    return [
        import_symbol(store, symbol, path, until=last_day, source=source, imported_at=stamp)
        for symbol, path in files.items()
    ]
