"""Per-request sessions (``X-Sandbox-Session``) over real HTTP; the sandboxes' today is Friday 2024-06-14."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.sessions import SESSION_HEADER

PREMIUM_KEY = "sandbox-premium"
FREE_A, FREE_B = "free-a", "free-b"  # two free keys
ALPACA_KEYS = {"APCA-API-KEY-ID": "session-key", "APCA-API-SECRET-KEY": "session-secret"}
MARKET = SyntheticMarket()


def daily(
    base_url: str, session: str | None = None, apikey: str = PREMIUM_KEY, **params: str
) -> httpx.Response:
    headers = {SESSION_HEADER: session} if session else {}
    query = {"function": "TIME_SERIES_DAILY", "symbol": "AAPL", "apikey": apikey, **params}
    return httpx.get(f"{base_url}/query", params=query, headers=headers, timeout=10)


def last_refreshed(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["Meta Data"]["3. Last Refreshed"]


def alpaca(
    base_url: str, method: str, path: str, session: str | None = None, key: str = "session-key", **kwargs
) -> httpx.Response:
    headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": "session-secret"}
    if session:
        headers[SESSION_HEADER] = session
    return httpx.request(method, f"{base_url}/v2/{path}", headers=headers, timeout=10, **kwargs)


def trading(base_url: str, session: str | None, key: str = "team-key") -> TradingClient:
    client = TradingClient(key, "team-secret", paper=True, url_override=base_url)
    if session:
        client._session.headers[SESSION_HEADER] = session  # a requests.Session, sent with every call
    return client


def global_today(base_url: str) -> str:
    return httpx.get(f"{base_url}/_sandbox/clock").json()["today"]


# -- AlphaVantage ---------------------------------------------------------------------------------------


def test_sessions_served_concurrently_each_get_their_own_last_row(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    sessions = ["2024-06-10", "2024-06-11", "2024-06-12", "2024-06-13", None]
    requests = list(itertools.islice(itertools.cycle(sessions), 60))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda session: (session, daily(base_url, session)), requests))

    for session, response in answers:
        assert last_refreshed(response) == (session or "2024-06-14")
        series = response.json()["Time Series (Daily)"]
        newest = max(series)
        assert float(series[newest]["4. close"]) == MARKET.bar("AAPL", date.fromisoformat(newest)).close
    assert global_today(base_url) == "2024-06-14"


def test_query_parameter_for_clients_without_headers(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    assert last_refreshed(daily(base_url, sandbox_session="2024-03-28")) == "2024-03-28"
    csv = daily(base_url, sandbox_session="2024-03-28", datatype="csv").text.splitlines()
    assert csv[1].startswith("2024-03-28,")
    assert last_refreshed(daily(base_url, "2024-03-28", sandbox_session="2024-03-28")) == "2024-03-28"
    disagree = daily(base_url, "2024-03-27", sandbox_session="2024-03-28")
    assert disagree.status_code == 400
    assert "disagree" in disagree.json()["Error Message"]


def test_free_key_quota_is_counted_per_session_day(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox(daily_limit=2)

    for _ in range(2):
        assert last_refreshed(daily(base_url, "2024-06-12", apikey=FREE_A)) == "2024-06-12"
    throttled = daily(base_url, "2024-06-12", apikey=FREE_A).json()
    assert "2 requests per day" in throttled["Information"]

    assert last_refreshed(daily(base_url, "2024-06-13", apikey=FREE_A)) == "2024-06-13"
    assert last_refreshed(daily(base_url, apikey=FREE_A)) == "2024-06-14"  # the global day
    assert last_refreshed(daily(base_url, "2024-06-12", apikey=FREE_B)) == "2024-06-12"
    assert "Information" in daily(base_url, sandbox_session="2024-06-12", apikey=FREE_A).json()


@pytest.mark.parametrize(
    ("session", "reason"),
    [
        ("2024-06-17", "after the sandbox's today (2024-06-14)"),
        ("2024-06-08", "not an NYSE session (a weekend); the next session is 2024-06-10"),
        ("2024-03-29", "not an NYSE session (Good Friday)"),
        ("1999-12-31", "before the sandbox market starts (2000-01-03)"),
        ("20240613", "must be a date YYYY-MM-DD"),
        ("2024-6-13", "must be a date YYYY-MM-DD"),
        ("", "must be a date YYYY-MM-DD"),
    ],
)
def test_sessions_the_sandbox_cannot_serve_are_refused_in_each_wire_format(
    sandbox_url: str, session: str, reason: str
) -> None:
    before = httpx.get(f"{sandbox_url}/_sandbox/stats").json()["query_requests"]

    refused = httpx.get(
        f"{sandbox_url}/query",
        params={"function": "TIME_SERIES_DAILY", "symbol": "AAPL", "apikey": PREMIUM_KEY},
        headers={SESSION_HEADER: session},
    )
    assert refused.status_code == 400
    assert list(refused.json()) == ["Error Message"]
    assert reason in refused.json()["Error Message"]
    by_parameter = daily(sandbox_url, sandbox_session=session)
    assert (by_parameter.status_code, by_parameter.json()) == (400, refused.json())
    assert httpx.get(f"{sandbox_url}/_sandbox/stats").json()["query_requests"] == before

    for path in ("clock", "account", "stocks/bars/latest?symbols=AAPL"):
        answer = httpx.get(f"{sandbox_url}/v2/{path}", headers={**ALPACA_KEYS, SESSION_HEADER: session})
        assert answer.status_code == 422
        assert answer.json()["code"] == 40010001
        assert reason in answer.json()["message"]


def test_configured_today_stays_the_upper_bound_when_the_global_clock_moves(
    start_sandbox: Callable[..., str],
) -> None:
    base_url = start_sandbox()
    httpx.put(f"{base_url}/_sandbox/clock", json={"today": "2024-06-21"}).raise_for_status()

    assert last_refreshed(daily(base_url)) == "2024-06-21"
    assert daily(base_url, "2024-06-18").status_code == 400
    assert last_refreshed(daily(base_url, "2024-06-14")) == "2024-06-14"
    assert global_today(base_url) == "2024-06-21"


# -- Alpaca ---------------------------------------------------------------------------------------------


def test_alpaca_clock_answers_as_of_the_session_close(sandbox_url: str) -> None:
    thursday = alpaca(sandbox_url, "GET", "clock", "2024-03-28").json()
    assert thursday["is_open"] is False
    stamp = datetime.fromisoformat(thursday["timestamp"])
    assert stamp.date() == date(2024, 3, 28) and stamp.hour >= 16
    assert thursday["next_open"] == "2024-04-01T09:30:00-04:00"  # across Good Friday and the weekend
    assert thursday["next_close"] == "2024-04-01T16:00:00-04:00"

    before_early_close = alpaca(sandbox_url, "GET", "clock", "2023-06-30").json()
    assert before_early_close["next_open"] == "2023-07-03T09:30:00-04:00"
    assert before_early_close["next_close"] == "2023-07-03T13:00:00-04:00"

    unchanged = alpaca(sandbox_url, "GET", "clock").json()
    assert datetime.fromisoformat(unchanged["timestamp"]).date() == date(2024, 6, 14)
    assert unchanged["next_open"] == "2024-06-17T09:30:00-04:00"


def test_alpaca_bars_stop_at_the_session(sandbox_url: str) -> None:
    params = {"symbols": "AAPL,MSFT", "timeframe": "1Day", "start": "2024-06-03"}
    bars = alpaca(sandbox_url, "GET", "stocks/bars", "2024-06-12", params=params).json()["bars"]
    assert [bar["t"][:10] for bar in bars["AAPL"]][-1] == "2024-06-12"
    assert len(bars["MSFT"]) == 8
    latest = alpaca(sandbox_url, "GET", "stocks/bars/latest", "2024-06-12", params={"symbols": "AAPL"}).json()
    assert latest["bars"]["AAPL"]["t"] == "2024-06-12T04:00:00Z"
    assert latest["bars"]["AAPL"]["c"] == MARKET.bar("AAPL", date(2024, 6, 12)).close
    default_start = alpaca(sandbox_url, "GET", "stocks/bars", "2024-06-12", params={"symbols": "AAPL"})
    assert [bar["t"] for bar in default_start.json()["bars"]["AAPL"]] == ["2024-06-12T04:00:00Z"]


def test_order_under_a_session_fills_at_the_next_sessions_open(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    body = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}

    placed = alpaca(base_url, "POST", "orders", "2024-06-12", json=body).json()
    assert placed["status"] == "accepted"
    submitted = datetime.fromisoformat(placed["submitted_at"].replace("Z", "+00:00"))
    assert submitted.astimezone(EXCHANGE_TIMEZONE).date() == date(2024, 6, 12)
    assert alpaca(base_url, "GET", f"orders/{placed['id']}", "2024-06-12").json()["status"] == "accepted"

    filled = alpaca(base_url, "GET", f"orders/{placed['id']}", "2024-06-13").json()
    assert filled["status"] == "filled"
    assert float(filled["filled_avg_price"]) == pytest.approx(MARKET.bar("AAPL", date(2024, 6, 13)).open)
    assert filled["filled_at"] == "2024-06-13T13:30:00.000000Z"
    position = alpaca(base_url, "GET", "positions/AAPL", "2024-06-13").json()
    assert position["qty"] == "10"
    assert float(position["current_price"]) == MARKET.bar("AAPL", date(2024, 6, 13)).close
    assert global_today(base_url) == "2024-06-14"


def test_the_global_clock_settles_orders_placed_under_a_session(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    body = {"symbol": "MSFT", "notional": "1000", "side": "buy", "type": "market", "time_in_force": "day"}
    placed = alpaca(base_url, "POST", "orders", "2024-06-12", json=body).json()

    filled = alpaca(base_url, "GET", f"orders/{placed['id']}").json()  # global clock: Friday 2024-06-14
    assert (filled["status"], filled["filled_at"]) == ("filled", "2024-06-13T13:30:00.000000Z")


def test_a_session_behind_the_account_is_refused_and_changes_nothing(
    start_sandbox: Callable[..., str],
) -> None:
    base_url = start_sandbox()
    body = {"symbol": "AAPL", "qty": "5", "side": "buy", "type": "market", "time_in_force": "day"}
    placed = alpaca(base_url, "POST", "orders", "2024-06-11", json=body).json()
    assert alpaca(base_url, "GET", "account", "2024-06-13").status_code == 200  # settles 06-12 and 06-13

    for method, path, kwargs in [
        ("GET", "account", {}),
        ("GET", "positions", {}),
        ("GET", f"orders/{placed['id']}", {}),
        ("POST", "orders", {"json": {**body, "client_order_id": "late"}}),
        ("DELETE", "positions/AAPL", {}),
    ]:
        behind = alpaca(base_url, method, path, "2024-06-11", **kwargs)
        assert behind.status_code == 409, path
        assert behind.json()["code"] == 40910000
        assert "settled through 2024-06-13" in behind.json()["message"]

    still = alpaca(base_url, "GET", f"orders/{placed['id']}", "2024-06-13").json()
    assert (still["status"], still["filled_at"]) == ("filled", "2024-06-12T13:30:00.000000Z")
    assert alpaca(base_url, "GET", "positions/AAPL", "2024-06-13").json()["qty"] == "5"
    assert (
        alpaca(base_url, "GET", "orders", "2024-06-13", params={"status": "all"}).json()[0]["id"]
        == placed["id"]
    )
    # what needs no account state is served for any session
    assert alpaca(base_url, "GET", "clock", "2024-06-11").json()["next_open"] == "2024-06-12T09:30:00-04:00"
    assert alpaca(base_url, "GET", "assets/AAPL", "2024-06-11").status_code == 200
    # the session the account is settled through, and requests without a session, are served
    assert alpaca(base_url, "GET", "account").status_code == 200
    assert alpaca(base_url, "GET", "account", "2024-06-14").status_code == 200
    assert alpaca(base_url, "GET", "account", "2024-06-13").status_code == 409


def test_other_keys_are_not_touched_by_a_session(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    assert alpaca(base_url, "GET", "account", "2024-06-14", key="ahead").status_code == 200
    assert alpaca(base_url, "GET", "account", "2024-06-03", key="behind").status_code == 200
    assert alpaca(base_url, "GET", "account", "2024-06-04", key="behind").status_code == 200


# -- the real alpaca-py clients ---------------------------------------------------------------------------


def test_alpaca_py_trading_client_sends_the_session(start_sandbox: Callable[..., str]) -> None:
    base_url = start_sandbox()
    client = trading(base_url, "2024-03-28")

    clock = client.get_clock()
    assert clock.timestamp.astimezone(EXCHANGE_TIMEZONE).date() == date(2024, 3, 28)
    assert clock.next_open.isoformat() == "2024-04-01T09:30:00-04:00"
    order = client.submit_order(
        MarketOrderRequest(symbol="NVDA", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert order.status == OrderStatus.ACCEPTED

    client._session.headers[SESSION_HEADER] = "2024-04-01"
    filled = client.get_order_by_id(order.id)
    assert filled.status == OrderStatus.FILLED
    assert filled.filled_at.isoformat() == "2024-04-01T13:30:00+00:00"
    assert trading(base_url, None).get_clock().next_open.isoformat() == "2024-06-17T09:30:00-04:00"

    client._session.headers[SESSION_HEADER] = "2024-06-18"
    with pytest.raises(APIError) as refused:
        client.get_clock()
    assert (refused.value.status_code, refused.value.code) == (422, 40010001)
    client._session.headers[SESSION_HEADER] = "2024-03-28"
    with pytest.raises(APIError) as behind:
        client.get_account()
    assert (behind.value.status_code, behind.value.code) == (409, 40910000)


def test_alpaca_py_data_client_sends_the_session(sandbox_url: str) -> None:
    data = StockHistoricalDataClient("team-key", "team-secret", url_override=sandbox_url)
    data._session.headers[SESSION_HEADER] = "2024-06-12"
    bars = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day, start=datetime(2024, 6, 3))
    )
    days = [bar.timestamp.astimezone(EXCHANGE_TIMEZONE).date() for bar in bars.data["AAPL"]]
    assert days[-1] == date(2024, 6, 12) and len(days) == 8
