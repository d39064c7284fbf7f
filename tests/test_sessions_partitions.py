"""The NYSE session partitions: exactly the exchange-calendars sessions, and Dagster mappings over them."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from mlops_pipeline.assets.sessions import (
    PREVIOUS_SESSION,
    nyse_sessions,
    session_of,
    session_ticker_key,
    session_ticker_partitions,
    split_session_ticker,
    ticker_of,
)
from mlops_pipeline.market.calendar import non_session_weekdays, trading_days

NEW_YORK = ZoneInfo("America/New_York")
SESSIONS_2024 = nyse_sessions(date(2024, 1, 1), date(2024, 12, 31))


def keys_of(start: str, end: str) -> list[str]:
    return [day.strftime("%Y-%m-%d") for day in trading_days(start, end)]


def test_non_session_weekdays_are_the_weekday_holidays() -> None:
    assert non_session_weekdays(date(2024, 1, 1), date(2024, 12, 31)) == [
        date(2024, 1, 1),
        date(2024, 1, 15),
        date(2024, 2, 19),
        date(2024, 3, 29),
        date(2024, 5, 27),
        date(2024, 6, 19),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 11, 28),
        date(2024, 12, 25),
    ]
    assert non_session_weekdays("2001-09-10", "2001-09-17") == [date(2001, 9, d) for d in (11, 12, 13, 14)]
    assert non_session_weekdays("2024-06-15", "2024-06-16") == []


def test_keys_of_2024_are_exactly_the_sessions() -> None:
    keys = SESSIONS_2024.get_partition_keys()
    assert keys == keys_of("2024-01-01", "2024-12-31")
    assert len(keys) == 252
    assert {"2024-03-29", "2024-07-04", "2024-11-28", "2024-01-01", "2024-12-25"}.isdisjoint(keys)
    assert all(date.fromisoformat(key).weekday() < 5 for key in keys)
    assert SESSIONS_2024.get_num_partitions() == 252


@pytest.mark.parametrize("end", [date(2024, 6, 14), date(2024, 3, 28), date(2024, 12, 31)])
def test_the_last_key_is_end(end: date) -> None:
    sessions = nyse_sessions(date(2024, 1, 2), end)
    assert sessions.get_last_partition_key() == end.isoformat()
    assert sessions.get_partition_keys()[-1] == end.isoformat()


def test_end_on_a_holiday_stops_at_the_session_before() -> None:
    assert nyse_sessions(date(2024, 3, 25), date(2024, 3, 29)).get_partition_keys()[-1] == "2024-03-28"


def test_end_session_is_a_key_on_its_evening() -> None:
    """The session completed at today's close is a partition although its calendar day is not over."""
    sessions = nyse_sessions(date(2024, 6, 3), date(2024, 6, 14))
    evening = datetime(2024, 6, 14, 17, 0, tzinfo=NEW_YORK)
    assert sessions.get_partition_keys(current_time=evening)[-1] == "2024-06-14"


@pytest.mark.parametrize(
    "key",
    ["2024-03-29", "2024-07-04", "2024-11-28", "2024-06-15", "2024-06-16", "2025-01-02", "2023-12-29"],
)
def test_holidays_weekends_and_dates_outside_are_not_keys(key: str) -> None:
    assert not SESSIONS_2024.has_partition_key(key)
    assert key not in SESSIONS_2024.get_partition_keys()


@pytest.mark.parametrize("key", ["2024-01-02", "2024-03-28", "2024-04-01", "2024-12-31"])
def test_sessions_are_keys(key: str) -> None:
    assert SESSIONS_2024.has_partition_key(key)


def test_keys_in_range_over_a_week() -> None:
    week = SESSIONS_2024.get_partition_keys_in_range(dg.PartitionKeyRange("2024-03-25", "2024-04-01"))
    assert week == ["2024-03-25", "2024-03-26", "2024-03-27", "2024-03-28", "2024-04-01"]


def test_multi_partitions_are_session_times_ticker() -> None:
    sessions = nyse_sessions(date(2024, 3, 25), date(2024, 4, 2))
    tickers = ["AAPL", "MSFT", "NVDA"]
    multi = session_ticker_partitions(sessions, tickers)
    assert [dimension.name for dimension in multi.partitions_defs] == ["session", "ticker"]
    keys = multi.get_partition_keys()
    assert len(keys) == 6 * 3
    assert {(key.keys_by_dimension["session"], key.keys_by_dimension["ticker"]) for key in keys} == {
        (session, ticker) for session in keys_of("2024-03-25", "2024-04-02") for ticker in tickers
    }
    assert not multi.has_partition_key(dg.MultiPartitionKey({"session": "2024-03-29", "ticker": "AAPL"}))
    assert not multi.has_partition_key(session_ticker_key(date(2024, 3, 27), "TSLA"))
    assert multi.has_partition_key(session_ticker_key(date(2024, 3, 27), "MSFT"))
    assert "2024-03-27|MSFT" in {str(key) for key in keys}


def test_session_ticker_keys_read_both_ways() -> None:
    key = session_ticker_key(date(2024, 6, 13), "MSFT")
    assert str(key) == "2024-06-13|MSFT"
    assert key.keys_by_dimension == {"session": "2024-06-13", "ticker": "MSFT"}
    assert split_session_ticker("2024-06-13|MSFT") == (date(2024, 6, 13), "MSFT")
    assert split_session_ticker(key) == (date(2024, 6, 13), "MSFT")
    with pytest.raises(ValueError, match="is not a session\\|ticker key"):
        split_session_ticker("2024-06-13")


def test_previous_session_mapping_skips_holidays_and_weekends() -> None:
    def upstream(key: str) -> list[str]:
        result = PREVIOUS_SESSION.get_upstream_mapped_partitions_result_for_partitions(
            SESSIONS_2024.subset_with_partition_keys([key]), SESSIONS_2024, SESSIONS_2024
        )
        assert result.required_but_nonexistent_subset.is_empty
        return list(result.partitions_subset.get_partition_keys())

    assert upstream("2024-04-01") == ["2024-03-28"]  # across Good Friday and the weekend
    assert upstream("2024-07-05") == ["2024-07-03"]
    assert upstream("2024-06-17") == ["2024-06-14"]
    downstream = PREVIOUS_SESSION.get_downstream_partitions_for_partitions(
        SESSIONS_2024.subset_with_partition_keys(["2024-03-28"]), SESSIONS_2024, SESSIONS_2024
    )
    assert list(downstream.get_partition_keys()) == ["2024-04-01"]


@dg.asset(partitions_def=SESSIONS_2024)
def prices() -> None: ...


@dg.asset(partitions_def=SESSIONS_2024, deps=[dg.AssetDep(prices, partition_mapping=PREVIOUS_SESSION)])
def signals(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.asset_partition_keys_for_input("prices"))


def test_previous_session_mapping_in_a_run() -> None:
    result = dg.materialize([prices, signals], partition_key="2024-04-01")
    assert result.success
    assert result.output_for_node("signals") == ["2024-03-28"]


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        nyse_sessions(date(2024, 6, 14), date(2024, 6, 13))


TICKER_PARTITIONS = session_ticker_partitions(SESSIONS_2024, ["AAPL", "MSFT"])


@dg.asset(partitions_def=TICKER_PARTITIONS)
def per_ticker(context: dg.AssetExecutionContext) -> tuple[date, str]:
    return session_of(context), ticker_of(context)


@dg.asset(partitions_def=SESSIONS_2024)
def per_session(context: dg.AssetExecutionContext) -> date:
    return session_of(context)


def test_a_run_reads_its_session_and_ticker_from_the_partition_key_only() -> None:
    result = dg.materialize([per_ticker], partition_key="2024-04-01|MSFT")
    assert result.success
    assert result.output_for_node("per_ticker") == (date(2024, 4, 1), "MSFT")
    key = session_ticker_key(date(2024, 3, 28), "AAPL")
    assert dg.materialize([per_ticker], partition_key=key).output_for_node("per_ticker") == (
        date(2024, 3, 28),
        "AAPL",
    )
    session = dg.materialize([per_session], partition_key="2024-04-01")
    assert session.output_for_node("per_session") == date(2024, 4, 1)


@dg.asset(partitions_def=SESSIONS_2024)
def session_without_ticker(context: dg.AssetExecutionContext) -> str:
    return ticker_of(context)


def test_a_session_partition_has_no_ticker() -> None:
    result = dg.materialize([session_without_ticker], partition_key="2024-04-01", raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "partition '2024-04-01' has no ticker: expected a session|ticker key" in message
