from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

import httpx
import pytest
from alpha_vantage.alphavantage import AlphaVantage
from alpha_vantage.timeseries import TimeSeries

from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE
from mlops_pipeline.sandbox.market import SyntheticMarket

FREE_KEY = "free-key"
PREMIUM_KEY = "sandbox-premium"
PRICE = re.compile(r"^\d+\.\d{4}$")
INTEGER = re.compile(r"^\d+$")

INVALID_CALL = (
    "Invalid API call. Please retry or visit the documentation "
    "(https://www.alphavantage.co/documentation/) for {function}."
)
MISSING_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
DEMO = (
    "The **demo** API key is for demo purposes only. Please claim your free API key at "
    "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. "
    "It takes fewer than 20 seconds."
)
PREMIUM_ENDPOINT = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the "
    "premium plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints"
)
PREMIUM_FULL = (
    "Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium feature for "
    "the TIME_SERIES_DAILY endpoint. You may subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to instantly unlock all premium features"
)
BURST = (
    "Thank you for using Alpha Vantage! Please consider spreading out your free API requests more "
    "sparingly (1 request per second). You may subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day), raise "
    "the per-second burst limit, and instantly unlock all premium endpoints"
)


def daily_quota(key: str) -> str:
    return (
        f"We have detected your API key as {key} and our standard API rate limit is 25 requests per day. "
        "Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly "
        "remove all daily rate limits."
    )


def query(base_url: str, **params: str) -> httpx.Response:
    response = httpx.get(f"{base_url}/query", params=params)
    assert response.status_code == 200
    return response


def daily(base_url: str, symbol: str = "AAPL", apikey: str = FREE_KEY, **params: str) -> httpx.Response:
    return query(base_url, function="TIME_SERIES_DAILY", symbol=symbol, apikey=apikey, **params)


def test_daily_json_shape(sandbox_url: str, sandbox_today: date, synthetic_market: SyntheticMarket) -> None:
    body = daily(sandbox_url).json()

    assert list(body) == ["Meta Data", "Time Series (Daily)"]
    assert body["Meta Data"] == {
        "1. Information": "Daily Prices (open, high, low, close) and Volumes",
        "2. Symbol": "AAPL",
        "3. Last Refreshed": sandbox_today.isoformat(),
        "4. Output Size": "Compact",
        "5. Time Zone": "US/Eastern",
    }
    series = body["Time Series (Daily)"]
    dates = list(series)
    assert len(dates) == 100
    assert dates == sorted(dates, reverse=True)
    assert dates[0] == sandbox_today.isoformat()
    for values in series.values():
        assert list(values) == ["1. open", "2. high", "3. low", "4. close", "5. volume"]
        assert all(PRICE.match(values[name]) for name in ("1. open", "2. high", "3. low", "4. close"))
        assert INTEGER.match(values["5. volume"])
    latest = synthetic_market.bar("AAPL", sandbox_today)
    assert series[dates[0]]["4. close"] == f"{latest.close:.4f}"
    assert series[dates[0]]["5. volume"] == str(latest.volume)


def test_daily_csv_shape(sandbox_url: str) -> None:
    text = daily(sandbox_url, datatype="csv").text
    json_series = daily(sandbox_url).json()["Time Series (Daily)"]

    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert len(lines) == 101
    assert lines[1:] == [",".join([day, *values.values()]) for day, values in json_series.items()]


def test_adjusted_full_history_for_premium_keys(sandbox_url: str, synthetic_market: SyntheticMarket) -> None:
    body = query(
        sandbox_url,
        function="TIME_SERIES_DAILY_ADJUSTED",
        symbol="AAPL",
        outputsize="full",
        apikey=PREMIUM_KEY,
    ).json()

    assert body["Meta Data"]["1. Information"] == "Daily Time Series with Splits and Dividend Events"
    assert body["Meta Data"]["4. Output Size"] == "Full size"
    series = body["Time Series (Daily)"]
    assert len(series) == len(synthetic_market.history("AAPL", date(2024, 6, 14)))
    split_day = series["2020-08-31"]
    assert list(split_day) == [
        "1. open",
        "2. high",
        "3. low",
        "4. close",
        "5. adjusted close",
        "6. volume",
        "7. dividend amount",
        "8. split coefficient",
    ]
    assert split_day["8. split coefficient"] == "4.0"
    assert series["2020-08-28"]["8. split coefficient"] == "1.0"
    assert series["2020-08-28"]["7. dividend amount"] == "0.0000"


def test_adjusted_csv_header(sandbox_url: str) -> None:
    text = query(
        sandbox_url, function="TIME_SERIES_DAILY_ADJUSTED", symbol="AAPL", datatype="csv", apikey=PREMIUM_KEY
    ).text

    assert text.startswith(
        "timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient\r\n"
    )
    assert len(text.split("\r\n")) == 102


@pytest.mark.parametrize(
    ("params", "body"),
    [
        (
            {"function": "TIME_SERIES_DAILY", "symbol": "ZZZZ", "apikey": FREE_KEY},
            {"Error Message": INVALID_CALL.format(function="TIME_SERIES_DAILY")},
        ),
        (
            {"function": "TIME_SERIES_DAILY_ADJUSTED", "symbol": "INVALID", "apikey": PREMIUM_KEY},
            {"Error Message": INVALID_CALL.format(function="TIME_SERIES_DAILY_ADJUSTED")},
        ),
        (
            {"function": "TIME_SERIES_DAILY", "apikey": FREE_KEY},
            {"Error Message": INVALID_CALL.format(function="TIME_SERIES_DAILY")},
        ),
        (
            {"function": "FOO", "symbol": "AAPL", "apikey": FREE_KEY},
            {"Error Message": "This API function (FOO) does not exist."},
        ),
        ({"function": "TIME_SERIES_DAILY", "symbol": "AAPL"}, {"Error Message": MISSING_KEY}),
        ({"function": "TIME_SERIES_DAILY", "symbol": "AAPL", "apikey": ""}, {"Error Message": MISSING_KEY}),
        ({"function": "TIME_SERIES_DAILY", "symbol": "AAPL", "apikey": "demo"}, {"Information": DEMO}),
        (
            {"function": "TIME_SERIES_DAILY_ADJUSTED", "symbol": "AAPL", "apikey": FREE_KEY},
            {"Information": PREMIUM_ENDPOINT},
        ),
        (
            {"function": "TIME_SERIES_DAILY", "symbol": "AAPL", "outputsize": "full", "apikey": FREE_KEY},
            {"Information": PREMIUM_FULL},
        ),
        (
            {"function": "TIME_SERIES_DAILY", "symbol": "ZZZZ", "datatype": "csv", "apikey": FREE_KEY},
            {"Error Message": INVALID_CALL.format(function="TIME_SERIES_DAILY")},
        ),
    ],
)
def test_error_bodies(sandbox_url: str, params: dict[str, str], body: dict[str, str]) -> None:
    response = query(sandbox_url, **params)

    assert response.json() == body
    assert response.headers["content-type"] == "application/json"


def test_demo_key_serves_ibm(sandbox_url: str) -> None:
    body = daily(sandbox_url, symbol="IBM", apikey="demo", outputsize="full").json()

    assert body["Meta Data"]["4. Output Size"] == "Full size"


def test_daily_quota_per_key_and_sandbox_day(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox(daily_limit=2)

    assert "Meta Data" in daily(base_url, apikey="key-a").json()
    assert "Meta Data" in daily(base_url, apikey="key-a").json()
    assert daily(base_url, apikey="key-a").json() == {
        "Information": daily_quota("key-a").replace("25 requests", "2 requests")
    }
    assert "Meta Data" in daily(base_url, apikey="key-b").json()
    assert "Meta Data" in daily(base_url, apikey=PREMIUM_KEY).json()

    httpx.put(f"{base_url}/_sandbox/clock", json={"today": "2024-06-17"}).raise_for_status()
    assert "Meta Data" in daily(base_url, apikey="key-a").json()


def test_burst_limit_for_free_keys(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox(burst_per_second=0.1)

    assert "Meta Data" in daily(base_url).json()
    assert daily(base_url).json() == {"Information": BURST}
    assert "Meta Data" in daily(base_url, apikey=PREMIUM_KEY).json()


def test_forced_throttle(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    httpx.post(f"{base_url}/_sandbox/throttle", json={"kind": "burst", "times": 2}).raise_for_status()

    assert daily(base_url).json() == {"Information": BURST}
    assert daily(base_url, apikey=PREMIUM_KEY).json() == {"Information": BURST}
    assert "Meta Data" in daily(base_url).json()

    httpx.post(f"{base_url}/_sandbox/throttle", json={"kind": "daily"}).raise_for_status()
    assert daily(base_url, apikey="key-c").json() == {"Information": daily_quota("key-c")}

    httpx.post(f"{base_url}/_sandbox/throttle", json={"kind": "burst", "times": 5}).raise_for_status()
    httpx.post(f"{base_url}/_sandbox/throttle", json={"kind": None}).raise_for_status()
    assert "Meta Data" in daily(base_url).json()


def test_clock_change_moves_the_served_data(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()

    response = httpx.put(f"{base_url}/_sandbox/clock", json={"today": "2024-07-04"})
    assert response.json() == {"today": "2024-07-04"}
    assert httpx.get(f"{base_url}/_sandbox/clock").json() == {"today": "2024-07-04"}
    meta = daily(base_url).json()["Meta Data"]
    assert meta["3. Last Refreshed"] == "2024-07-03"

    httpx.put(f"{base_url}/_sandbox/clock", json={"today": None}).raise_for_status()
    real_today = datetime.now(EXCHANGE_TIMEZONE).date().isoformat()
    assert httpx.get(f"{base_url}/_sandbox/clock").json() == {"today": real_today}


def test_invalid_clock_is_refused(sandbox_url: str) -> None:
    assert httpx.put(f"{sandbox_url}/_sandbox/clock", json={"today": "not-a-date"}).status_code == 422


def test_health_and_request_stats(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()

    assert httpx.get(f"{base_url}/_sandbox/health").json() == {"status": "ok"}
    daily(base_url)
    daily(base_url, symbol="ZZZZ")
    assert httpx.get(f"{base_url}/_sandbox/stats").json() == {"query_requests": 2}


def test_no_trailing_slash_redirects(sandbox_url: str) -> None:
    assert httpx.get(f"{sandbox_url}/query/", params={"function": "TIME_SERIES_DAILY"}).status_code == 404


@pytest.fixture
def alpha_vantage_package(sandbox_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the third-party ``alpha_vantage`` package at the sandbox."""
    monkeypatch.setattr(AlphaVantage, "_ALPHA_VANTAGE_API_URL", f"{sandbox_url}/query?")


@pytest.mark.usefixtures("alpha_vantage_package")
def test_alpha_vantage_package_reads_the_sandbox(sandbox_today: date) -> None:
    data, meta = TimeSeries(key=FREE_KEY).get_daily("AAPL")

    assert meta["2. Symbol"] == "AAPL"
    assert len(data) == 100
    assert next(iter(data)) == sandbox_today.isoformat()


@pytest.mark.usefixtures("alpha_vantage_package")
def test_alpha_vantage_package_reads_adjusted_data_with_a_premium_key() -> None:
    data, _ = TimeSeries(key=PREMIUM_KEY).get_daily_adjusted("NVDA", outputsize="full")

    assert data["2024-06-10"]["8. split coefficient"] == "10.0"


@pytest.mark.usefixtures("alpha_vantage_package")
@pytest.mark.parametrize(
    ("key", "symbol", "call", "message"),
    [
        (FREE_KEY, "ZZZZ", "get_daily", INVALID_CALL.format(function="TIME_SERIES_DAILY")),
        (FREE_KEY, "AAPL", "get_daily_adjusted", PREMIUM_ENDPOINT),
        ("demo", "AAPL", "get_daily", DEMO),
    ],
)
def test_alpha_vantage_package_raises_on_error_bodies(key: str, symbol: str, call: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(TimeSeries(key=key), call)(symbol)
