from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.importing import (
    PriceImportError,
    discover_import_files,
    import_prices,
    merge_imported,
    read_import_file,
)
from mlops_pipeline.market.store import prices_key, read_prices
from mlops_pipeline.resources.object_store import LocalObjectStore, ObjectStore, object_store_from_settings
from mlops_pipeline.sandbox.alphavantage_api import render_daily_csv
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.training.dataset import frame_fingerprint

DAY = date(2024, 6, 14)
runner = CliRunner()


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket()


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects"))


def write_csv(folder: Path, symbol: str, frame: pd.DataFrame, *, newline: str = "\r\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{symbol}.csv"
    body = render_daily_csv(frame, adjusted=True).body
    path.write_bytes(body.replace("\r\n", newline).encode())
    return path


def test_import_round_trip_equals_the_market_frame(tmp_path: Path, store: ObjectStore, market) -> None:
    expected = market.history("AAPL", DAY)
    write_csv(tmp_path / "seed", "AAPL", expected)

    [outcome] = import_prices(store, tmp_path / "seed", until=DAY)

    assert outcome.ok, outcome.error
    assert store.list_keys("market/prices") == [prices_key("AAPL", DAY)]  # the snapshot of its last session
    stored, manifest = read_prices(store, "AAPL", DAY)
    pd.testing.assert_frame_equal(stored, expected.reset_index(drop=True))
    assert (outcome.rows, outcome.added, outcome.revisions) == (len(expected), len(expected), 0)
    assert (outcome.first_date, outcome.last_date) == (expected["date"].iloc[0].date(), DAY)
    assert manifest["ticker"] == "AAPL"
    assert manifest["adjusted"] is True
    assert manifest["source"] == "import:seed"
    assert manifest["as_of"] == DAY.isoformat()
    assert manifest["data_version"] == frame_fingerprint(stored)
    assert manifest["failed_checks"] == []
    assert "imported_at" in manifest


def test_lf_line_ends_lower_case_file_names_and_until(tmp_path: Path, store: ObjectStore, market) -> None:
    full = market.history("MSFT", DAY)
    write_csv(tmp_path / "seed", "msft", full, newline="\n")

    [outcome] = import_prices(store, tmp_path / "seed", until=date(2024, 6, 9))  # a Sunday

    assert outcome.ok, outcome.error
    assert outcome.symbol == "MSFT"
    assert outcome.last_date == date(2024, 6, 7)
    assert outcome.dropped_after_until == 5
    assert store.list_keys("market/prices") == [prices_key("MSFT", date(2024, 6, 7))]
    stored, _ = read_prices(store, "MSFT", date(2024, 6, 7))
    pd.testing.assert_frame_equal(stored, market.history("MSFT", date(2024, 6, 7)))


def test_until_before_a_split_gives_the_history_as_served_on_that_day(
    tmp_path: Path, store: ObjectStore, market
) -> None:
    write_csv(tmp_path / "seed", "NVDA", market.history("NVDA", DAY))  # 10:1 split on 2024-06-10

    [outcome] = import_prices(store, tmp_path / "seed", until=date(2024, 6, 7))

    assert outcome.ok, outcome.error
    stored, _ = read_prices(store, "NVDA", date(2024, 6, 7))
    pd.testing.assert_frame_equal(stored, market.history("NVDA", date(2024, 6, 7)), rtol=1e-6)


def test_reimporting_the_same_file_adds_and_revises_nothing(
    tmp_path: Path, store: ObjectStore, market
) -> None:
    write_csv(tmp_path / "seed", "IBM", market.history("IBM", DAY))
    import_prices(store, tmp_path / "seed", until=DAY)
    first, _ = read_prices(store, "IBM", DAY)

    [again] = import_prices(store, tmp_path / "seed", until=DAY)

    assert (again.ok, again.added, again.revisions) == (True, 0, 0)
    assert store.list_keys("market/prices") == [prices_key("IBM", DAY)]
    pd.testing.assert_frame_equal(read_prices(store, "IBM", DAY)[0], first)


def _corrupt(lines: list[str], kind: str) -> tuple[list[str], int, str]:
    """Break the rendered CSV ``lines``; return them, the 1-based line named and a field/phrase named."""
    if kind == "bad number":
        cells = lines[3].split(",")
        cells[4] = "12.3x"
        lines[3] = ",".join(cells)
        return lines, 4, "close"
    if kind == "wrong header":
        lines[0] = lines[0].replace("adjusted_close", "adj_close")
        return lines, 1, "unexpected CSV header"
    if kind == "duplicate date":
        lines.insert(6, lines[5])
        return lines, 7, "appears more than once (first on line 6)"
    if kind == "bad date":
        lines[2] = "2024-13-45" + lines[2][10:]
        return lines, 3, "timestamp"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bad number", "wrong header", "duplicate date", "bad date"])
def test_a_malformed_file_names_file_line_and_field_and_stores_nothing(
    tmp_path: Path, store: ObjectStore, market, kind: str
) -> None:
    seed = tmp_path / "seed"
    good = write_csv(seed, "MSFT", market.history("MSFT", DAY))
    bad = write_csv(seed, "AAPL", market.history("AAPL", DAY))
    lines, line_number, named = _corrupt(bad.read_bytes().decode().split("\r\n"), kind)
    bad.write_bytes("\r\n".join(lines).encode())

    outcomes = {outcome.symbol: outcome for outcome in import_prices(store, seed, until=DAY)}

    error = outcomes["AAPL"].error
    assert error is not None and error.startswith(f"{bad}: ")
    assert f"line {line_number}" in error and named in error
    assert store.list_keys("market/prices/AAPL/") == []
    assert outcomes["MSFT"].ok and store.exists(prices_key("MSFT", DAY)), good


def test_a_file_that_fails_a_check_leaves_the_stored_history_untouched(
    tmp_path: Path, store: ObjectStore, market
) -> None:
    history = market.history("AAPL", DAY)
    store.put_parquet(prices_key("AAPL", DAY), history.tail(100), {"ticker": "AAPL", "adjusted": True})
    before = store.get_bytes(prices_key("AAPL", DAY))
    missing_day = history["date"].iloc[-300]
    write_csv(tmp_path / "seed", "AAPL", history[history["date"] != missing_day])

    [outcome] = import_prices(store, tmp_path / "seed", until=DAY)

    assert not outcome.ok
    assert "trading_days" in outcome.error and missing_day.strftime("%Y-%m-%d") in outcome.error
    assert [check.name for check in outcome.failed_checks] == ["trading_days"]
    assert store.get_bytes(prices_key("AAPL", DAY)) == before
    assert store.list_keys("market/prices") == [prices_key("AAPL", DAY)]


def test_stored_rows_win_and_differences_are_counted_as_revisions(
    tmp_path: Path, store: ObjectStore, market
) -> None:
    history = market.history("AAPL", DAY)
    fetched = history.tail(100).reset_index(drop=True)
    fetched.loc[10, "volume"] += 7  # the live source says otherwise than the file
    store.put_parquet(prices_key("AAPL", DAY), fetched, {"ticker": "AAPL", "adjusted": True})
    write_csv(tmp_path / "seed", "AAPL", history)

    [outcome] = import_prices(store, tmp_path / "seed", until=DAY)

    assert (outcome.ok, outcome.added, outcome.revisions) == (True, len(history) - 100, 1)
    stored, _ = read_prices(store, "AAPL", DAY)
    assert (
        stored.loc[stored["date"] == fetched["date"].iloc[10], "volume"].item() == fetched["volume"].iloc[10]
    )
    pd.testing.assert_frame_equal(stored.drop(columns="volume"), history.drop(columns="volume"))


def test_the_import_merges_the_newest_snapshot_up_to_until_and_leaves_later_ones(
    tmp_path: Path, store: ObjectStore, market
) -> None:
    friday, monday = date(2024, 6, 7), date(2024, 6, 10)
    history = market.history("AAPL", DAY)
    fetched = market.history("AAPL", friday).tail(100).reset_index(drop=True)
    fetched.loc[10, "volume"] += 7  # the Friday snapshot disagrees with the file once
    store.put_parquet(prices_key("AAPL", friday), fetched, {"ticker": "AAPL", "adjusted": True})
    later = history.tail(100).reset_index(drop=True)
    later.loc[20, "volume"] += 9  # a snapshot after ``until``: neither read nor rewritten
    store.put_parquet(prices_key("AAPL", DAY), later, {"ticker": "AAPL", "adjusted": True})
    later_bytes = store.get_bytes(prices_key("AAPL", DAY))
    write_csv(tmp_path / "seed", "AAPL", history)

    [outcome] = import_prices(store, tmp_path / "seed", until=monday)

    assert outcome.ok, outcome.error
    assert (outcome.last_date, outcome.revisions) == (monday, 1)
    assert outcome.added == len(market.history("AAPL", monday)) - 100
    assert store.list_keys("market/prices") == [
        prices_key("AAPL", friday),
        prices_key("AAPL", monday),
        prices_key("AAPL", DAY),
    ]
    assert store.get_bytes(prices_key("AAPL", DAY)) == later_bytes
    stored, manifest = read_prices(store, "AAPL", monday)
    assert manifest["as_of"] == monday.isoformat()
    assert stored["date"].iloc[-1].date() == monday
    assert (
        stored.loc[stored["date"] == fetched["date"].iloc[10], "volume"].item() == fetched["volume"].iloc[10]
    )


@pytest.mark.parametrize("stored_ends_later", [True, False])
def test_merge_keeps_adjusted_close_continuous_across_file_and_stored_rows(market, stored_ends_later) -> None:
    """Whichever ends later, the merged adjusted close equals the one of the whole history."""
    symbol = "MSFT"
    full = market.history(symbol, DAY)
    assert full["dividend_amount"].tail(300).gt(0).any()  # dividends in play
    earlier = market.history(symbol, full["date"].iloc[-120].date())
    stored, imported = (full.tail(200), earlier) if stored_ends_later else (earlier.tail(200), full)

    merged = merge_imported(imported, stored, stored_adjusted=True)

    # adjusted closes come rounded to 4 decimals; re-adjusting them shifts that rounding a little
    pd.testing.assert_frame_equal(merged.history, full.reset_index(drop=True), rtol=1e-5)
    assert merged.revisions.empty
    assert merged.added == len(full) - 200


def test_a_raw_stored_history_is_replaced_where_the_file_has_rows(market) -> None:
    full = market.history("NVDA", DAY)  # a 10:1 split on 2024-06-10
    raw = full.tail(100).assign(
        adjusted_close=lambda f: f["close"], dividend_amount=0.0, split_coefficient=1.0
    )
    imported = market.history("NVDA", date(2024, 6, 7))

    merged = merge_imported(imported, raw, stored_adjusted=False)

    pd.testing.assert_frame_equal(merged.history, full.reset_index(drop=True), rtol=1e-4)
    assert merged.revisions.empty
    assert merged.added == len(full) - 100


def test_discovery_errors_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no csv here")
    with pytest.raises(PriceImportError, match=f"no \\*.csv files in {tmp_path / 'empty'}"):
        discover_import_files(tmp_path / "empty")
    with pytest.raises(PriceImportError, match="is not a directory"):
        discover_import_files(tmp_path / "absent")
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "AAPL.csv").write_text("")
    with pytest.raises(PriceImportError, match="not a valid symbol"):
        discover_import_files(tmp_path / "seed", ["AAPL", "bad symbol"])
    assert discover_import_files(tmp_path / "seed", ["msft"]) == {"MSFT": tmp_path / "seed" / "MSFT.csv"}
    (tmp_path / "seed" / "aapl.CSV").write_text("")
    with pytest.raises(PriceImportError, match="are both files for AAPL"):
        discover_import_files(tmp_path / "seed")


def test_a_file_name_that_is_not_a_symbol_fails_alone(tmp_path: Path, store: ObjectStore, market) -> None:
    write_csv(tmp_path / "seed", "MSFT", market.history("MSFT", DAY))
    write_csv(tmp_path / "seed", "prices 2024", market.history("AAPL", DAY))

    outcomes = {outcome.symbol: outcome for outcome in import_prices(store, tmp_path / "seed", until=DAY)}

    assert outcomes["MSFT"].ok
    assert "the file name is not a symbol" in outcomes["PRICES 2024"].error
    assert store.list_keys("market/prices") == [prices_key("MSFT", DAY)]


def test_read_import_file_accepts_a_byte_order_mark(tmp_path: Path, market) -> None:
    frame = market.history("AAPL", date(2024, 1, 31)).tail(5)
    path = tmp_path / "AAPL.csv"
    path.write_bytes(b"\xef\xbb\xbf" + render_daily_csv(frame, adjusted=True).body.encode())
    pd.testing.assert_frame_equal(read_import_file(path), frame.reset_index(drop=True))


def _seed(folder: Path, market: SyntheticMarket, *symbols: str) -> None:
    for symbol in symbols:
        write_csv(folder, symbol, market.history(symbol, DAY))


def test_cli_imports_every_file_and_exits_0(project: Path, tmp_path: Path, market) -> None:
    _seed(tmp_path / "seed", market, "AAPL", "MSFT")

    result = runner.invoke(app, ["market", "import", str(tmp_path / "seed"), "--until", "2024-06-14"])

    assert result.exit_code == 0, result.output
    assert "AAPL: " in result.output and "2024-06-14" in result.output
    assert "imported 2 of 2 symbol(s)" in result.output
    store = object_store_from_settings(load_settings())
    assert read_prices(store, "MSFT", DAY)[1]["source"] == "import:seed"


def test_cli_exits_1_when_a_file_fails_and_keeps_the_others(project: Path, tmp_path: Path, market) -> None:
    _seed(tmp_path / "seed", market, "AAPL", "MSFT")
    (tmp_path / "seed" / "MSFT.csv").write_text("timestamp,open\r\n2024-06-14,1.0\r\n")

    result = runner.invoke(app, ["market", "import", str(tmp_path / "seed"), "--until", "2024-06-14"])

    assert result.exit_code == 1, result.output
    assert "MSFT.csv" in result.output and "line 1" in result.output
    assert "imported 1 of 2 symbol(s)" in result.output and "failed: MSFT" in result.output
    store = object_store_from_settings(load_settings())
    assert store.exists(prices_key("AAPL", DAY)) and store.list_keys("market/prices/MSFT/") == []


def test_cli_symbols_option_and_default_until(project: Path, tmp_path: Path, market) -> None:
    _seed(tmp_path / "seed", market, "AAPL", "MSFT")

    result = runner.invoke(app, ["market", "import", str(tmp_path / "seed"), "--symbols", "msft"])

    assert result.exit_code == 0, result.output
    assert "imported 1 of 1 symbol(s)" in result.output
    store = object_store_from_settings(load_settings())
    assert store.list_keys("market/prices") == [prices_key("MSFT", DAY)]  # the file's last session
    missing = runner.invoke(app, ["market", "import", str(tmp_path / "seed"), "--symbols", "IBM"])
    assert missing.exit_code == 1 and "no file" in missing.output


def test_cli_exits_2_without_csv_files_or_with_a_bad_symbol(project: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["market", "import", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "no *.csv files in" in result.output and "empty" in result.output
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "AAPL.csv").write_text("")
    bad = runner.invoke(app, ["market", "import", str(tmp_path / "seed"), "--symbols", "AAPL,$$$"])
    assert bad.exit_code == 2 and "not a valid symbol" in bad.output
