from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlops_pipeline.market.alphavantage import (
    AlphaVantageClient,
    AlphaVantageError,
    AlphaVantageParseError,
    AlphaVantageUnavailableError,
    DailyQuotaExceededError,
    InvalidApiKeyError,
    InvalidSymbolError,
    PremiumRequiredError,
    RateLimitedError,
)
from mlops_pipeline.market.budget import BudgetExhaustedError, RequestBudget
from mlops_pipeline.market.schema import PRICE_COLUMNS
from mlops_pipeline.sandbox.market import SyntheticMarket

FREE_KEY = "free-key-5f3a9c"
PREMIUM_KEY = "sandbox-premium"


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def client_for(sleep: FakeSleep) -> Iterator[Callable[..., AlphaVantageClient]]:
    """Build clients with a fake sleep; closed after the test."""
    clients: list[AlphaVantageClient] = []

    def build(base_url: str, api_key: str = FREE_KEY, **options: object) -> AlphaVantageClient:
        client = AlphaVantageClient(api_key, base_url=base_url, sleep=sleep, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def query_requests(base_url: str) -> int:
    return httpx.get(f"{base_url}/_sandbox/stats").json()["query_requests"]


def force_throttle(base_url: str, kind: str, times: int) -> None:
    httpx.post(f"{base_url}/_sandbox/throttle", json={"kind": kind, "times": times}).raise_for_status()


def test_compact_json_and_csv_give_the_same_frame(
    sandbox_url: str,
    sandbox_today: date,
    synthetic_market: SyntheticMarket,
    client_for: Callable[..., AlphaVantageClient],
) -> None:
    client = client_for(sandbox_url)

    from_json = client.daily("MSFT")
    from_csv = client.daily("MSFT", datatype="csv")

    pd.testing.assert_frame_equal(from_json.frame, from_csv.frame)
    frame = from_json.frame
    assert frame.dtypes.astype(str).to_dict() == PRICE_COLUMNS
    assert len(frame) == 100
    assert frame["date"].is_monotonic_increasing
    expected = synthetic_market.history("MSFT", sandbox_today).tail(100).reset_index(drop=True)
    raw = ["date", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(frame[raw], expected[raw])
    assert (frame["adjusted_close"] == frame["close"]).all()
    assert (frame["split_coefficient"] == 1.0).all()
    assert (frame["dividend_amount"] == 0.0).all()
    assert not from_json.adjusted
    assert from_json.last_refreshed == sandbox_today
    assert from_json.requests_used == 1
    assert from_json.meta["2. Symbol"] == "MSFT"


@pytest.mark.parametrize("datatype", ["json", "csv"])
def test_premium_full_adjusted_history_round_trips_exactly(
    sandbox_url: str,
    sandbox_today: date,
    synthetic_market: SyntheticMarket,
    client_for: Callable[..., AlphaVantageClient],
    datatype: str,
) -> None:
    series = client_for(sandbox_url, PREMIUM_KEY, premium=True).daily(
        "AAPL", outputsize="full", adjusted=True, datatype=datatype
    )

    assert series.adjusted
    pd.testing.assert_frame_equal(series.frame, synthetic_market.history("AAPL", sandbox_today))


@pytest.mark.parametrize(("options"), [{"outputsize": "full"}, {"adjusted": True}])
def test_free_client_refuses_premium_requests_before_sending(
    start_sandbox: Callable[..., str],
    client_for: Callable[..., AlphaVantageClient],
    options: dict[str, object],
) -> None:
    base_url = start_sandbox()

    with pytest.raises(PremiumRequiredError, match="premium=True"):
        client_for(base_url).daily("AAPL", **options)
    assert query_requests(base_url) == 0


def test_premium_client_with_a_free_key_gets_premium_required(
    sandbox_url: str, client_for: Callable[..., AlphaVantageClient]
) -> None:
    with pytest.raises(PremiumRequiredError, match="premium endpoint"):
        client_for(sandbox_url, premium=True).daily("AAPL", adjusted=True)


def test_unknown_symbol(sandbox_url: str, client_for: Callable[..., AlphaVantageClient]) -> None:
    with pytest.raises(InvalidSymbolError, match="Invalid API call") as raised:
        client_for(sandbox_url).daily("ZZZZ", datatype="csv")
    assert str(raised.value).startswith("TIME_SERIES_DAILY ZZZZ: Invalid API call")


@pytest.mark.parametrize(("api_key", "message"), [("", "apikey is invalid or missing"), ("demo", "demo")])
def test_invalid_api_keys(
    sandbox_url: str, client_for: Callable[..., AlphaVantageClient], api_key: str, message: str
) -> None:
    with pytest.raises(InvalidApiKeyError, match=message):
        client_for(sandbox_url, api_key).daily("AAPL")


def test_daily_quota_is_not_retried_and_the_key_is_redacted(
    start_sandbox: Callable[..., str], client_for: Callable[..., AlphaVantageClient], sleep: FakeSleep
) -> None:
    base_url = start_sandbox(daily_limit=1)
    client = client_for(base_url)
    client.daily("AAPL")

    with pytest.raises(DailyQuotaExceededError, match="per day") as raised:
        client.daily("AAPL")
    assert FREE_KEY not in str(raised.value)
    assert "***" in raised.value.message
    assert query_requests(base_url) == 2
    assert sleep.calls == []


def test_throttling_is_retried_with_exponential_backoff(
    start_sandbox: Callable[..., str], client_for: Callable[..., AlphaVantageClient], sleep: FakeSleep
) -> None:
    base_url = start_sandbox()
    force_throttle(base_url, "burst", 2)

    series = client_for(base_url, backoff_s=1.0).daily("AAPL")

    assert len(series.frame) == 100
    assert series.requests_used == 3
    assert sleep.calls == [1.0, 2.0]


def test_persistent_throttling_gives_up_after_the_retries(
    start_sandbox: Callable[..., str], client_for: Callable[..., AlphaVantageClient], sleep: FakeSleep
) -> None:
    base_url = start_sandbox()
    force_throttle(base_url, "burst", 10)

    with pytest.raises(RateLimitedError, match="gave up after 3 attempts"):
        client_for(base_url, max_retries=2, backoff_s=0.5).daily("AAPL")
    assert query_requests(base_url) == 3
    assert sleep.calls == [0.5, 1.0]


def test_budget_exhaustion_stops_before_any_request(
    start_sandbox: Callable[..., str], client_for: Callable[..., AlphaVantageClient], tmp_path: Path
) -> None:
    base_url = start_sandbox()
    budget = RequestBudget(tmp_path / "budget.sqlite", FREE_KEY, daily_limit=2, min_interval_s=0)
    client = client_for(base_url, budget=budget)
    client.daily("AAPL")
    client.daily("MSFT")

    with pytest.raises(BudgetExhaustedError, match="2/2 used"):
        client.daily("IBM")
    assert query_requests(base_url) == 2


def test_service_quota_marks_the_budget_exhausted(
    start_sandbox: Callable[..., str], client_for: Callable[..., AlphaVantageClient], tmp_path: Path
) -> None:
    base_url = start_sandbox()
    force_throttle(base_url, "daily", 1)
    budget = RequestBudget(tmp_path / "budget.sqlite", FREE_KEY, daily_limit=25, min_interval_s=0)

    with pytest.raises(DailyQuotaExceededError):
        client_for(base_url, budget=budget).daily("AAPL")
    assert budget.remaining() == 0


def test_api_key_is_masked_in_the_http_log(
    sandbox_url: str, client_for: Callable[..., AlphaVantageClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        client_for(sandbox_url).daily("AAPL")

    assert "apikey=***" in caplog.text
    assert FREE_KEY not in caplog.text


def daily_values(open_: str, high: str, low: str, close: str, volume: str) -> dict[str, str]:
    return {"1. open": open_, "2. high": high, "3. low": low, "4. close": close, "5. volume": volume}


VALID_BODY = {
    "Meta Data": {"2. Symbol": "AAPL"},
    "Time Series (Daily)": {
        "2024-06-14": daily_values("10.0000", "11.0000", "9.5000", "10.5000", "1200"),
        "2024-06-13": daily_values("9.0000", "10.1000", "8.9000", "10.0000", "1000"),
    },
}
CSV_HEADER = "timestamp,open,high,low,close,volume\r\n"
CSV_ROW = "2024-06-14,10.0,11.0,9.5,10.5,1200\r\n"


def mock_client(
    client_for: Callable[..., AlphaVantageClient], *responses: httpx.Response | Exception
) -> AlphaVantageClient:
    """A client whose requests get ``responses`` in turn (an exception is raised by the transport)."""
    answers = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return client_for("https://www.alphavantage.co", transport=httpx.MockTransport(handler))


def test_mocked_valid_body_parses(client_for: Callable[..., AlphaVantageClient]) -> None:
    series = mock_client(client_for, httpx.Response(200, json=VALID_BODY)).daily("AAPL")

    assert list(series.frame["close"]) == [10.0, 10.5]
    assert list(series.frame["volume"]) == [1000, 1200]


def series_of(entries: dict[str, object]) -> dict[str, object]:
    return {"Meta Data": {}, "Time Series (Daily)": entries}


def with_value(day: str, field: str, value: object) -> dict[str, object]:
    body = json.loads(json.dumps(VALID_BODY))
    body["Time Series (Daily)"][day][field] = value
    return body


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="<html><body>502 Bad Gateway</body></html>"), "not valid JSON"),
        (httpx.Response(200, text=json.dumps(VALID_BODY)[:200]), "not valid JSON"),
        (httpx.Response(200, json=with_value("2024-06-13", "4. close", "abc")), "4. close on 2024-06-13"),
        (httpx.Response(200, json=with_value("2024-06-14", "5. volume", "12.5")), "5. volume on 2024-06-14"),
        (httpx.Response(200, json=with_value("2024-06-14", "2. high", None)), "2. high on 2024-06-14"),
        (httpx.Response(200, json={"Meta Data": {}}), "no 'Time Series \\(Daily\\)' object"),
        (httpx.Response(200, json=series_of({})), "no daily rows"),
        (httpx.Response(200, json=series_of({"2024-06-14": {"1. open": "1.0"}})), "lacks the field"),
        (
            httpx.Response(200, json=series_of({"junk": daily_values("1", "1", "1", "1", "1")})),
            "'junk' is not a",
        ),
    ],
)
def test_malformed_json_bodies_raise_parse_errors(
    client_for: Callable[..., AlphaVantageClient], response: httpx.Response, message: str
) -> None:
    with pytest.raises(AlphaVantageParseError, match=message):
        mock_client(client_for, response).daily("AAPL")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>Service Unavailable</html>", "unexpected CSV header"),
        (CSV_HEADER + CSV_ROW + "2024-06-13,9.0,10", "line 3 has 3 fields"),
        (CSV_HEADER + CSV_ROW.replace("10.5", "n/a"), "close on 2024-06-14"),
        (CSV_HEADER + CSV_ROW + CSV_ROW, "2024-06-14 appears more than once"),
    ],
)
def test_malformed_csv_bodies_raise_parse_errors(
    client_for: Callable[..., AlphaVantageClient], text: str, message: str
) -> None:
    with pytest.raises(AlphaVantageParseError, match=message):
        mock_client(client_for, httpx.Response(200, text=text)).daily("AAPL", datatype="csv")


def test_server_errors_are_retried(client_for: Callable[..., AlphaVantageClient], sleep: FakeSleep) -> None:
    client = mock_client(
        client_for, httpx.Response(503), httpx.ConnectError("refused"), httpx.Response(200, json=VALID_BODY)
    )

    series = client.daily("AAPL")

    assert series.requests_used == 3
    assert sleep.calls == [1.0, 2.0]


def test_persistent_server_errors_raise_unavailable(client_for: Callable[..., AlphaVantageClient]) -> None:
    client = mock_client(client_for, *[httpx.ReadTimeout("timed out")] * 3, httpx.Response(502))

    with pytest.raises(AlphaVantageUnavailableError, match="gave up after 4 attempts: HTTP 502"):
        client.daily("AAPL")


def test_unexpected_http_status_is_not_retried(client_for: Callable[..., AlphaVantageClient]) -> None:
    with pytest.raises(AlphaVantageError, match="unexpected HTTP status 404"):
        mock_client(client_for, httpx.Response(404)).daily("AAPL")
