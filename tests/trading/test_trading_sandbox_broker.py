"""The real alpaca-py clients against the sandbox broker over HTTP on 127.0.0.1."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import httpx
import pytest
from _trading_helpers import Sandbox
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestBarRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetExchange, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from mlops_pipeline.sandbox.market import SyntheticMarket

pytestmark = pytest.mark.integration  # servers on 127.0.0.1

MARKET = SyntheticMarket()


def trading(sandbox: Sandbox, key: str = "team-key", secret: str = "team-secret") -> TradingClient:
    return TradingClient(key, secret, paper=True, url_override=sandbox.url)


def market_buy(client: TradingClient, symbol: str, qty: float, cid: str | None = None, **kw) -> object:
    request = MarketOrderRequest(
        symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id=cid, **kw
    )
    return client.submit_order(request)


def error_of(call) -> APIError:
    with pytest.raises(APIError) as caught:
        call()
    return caught.value


def test_a_new_key_opens_a_100k_paper_account(sandbox: Sandbox) -> None:
    account = trading(sandbox).get_account()
    assert account.status.value == "ACTIVE"
    assert (account.cash, account.equity, account.buying_power) == ("100000.00", "100000.00", "100000.00")
    assert account.account_number.startswith("PA")
    other = trading(sandbox, key="other-key").get_account()
    assert other.id != account.id


def test_keys_are_checked(sandbox: Sandbox) -> None:
    trading(sandbox).get_account()
    wrong = error_of(trading(sandbox, secret="wrong").get_account)
    assert wrong.status_code == 401 and wrong.code == 40110000
    missing = httpx.get(f"{sandbox.url}/v2/account", headers={"APCA-API-KEY-ID": "team-key"})
    assert (missing.status_code, missing.json()) == (403, {"message": "forbidden."})


def test_clock_is_closed_after_the_sandbox_today_and_opens_next_session(sandbox: Sandbox) -> None:
    clock = trading(sandbox).get_clock()
    assert clock.is_open is False
    assert clock.timestamp.date() == date(2024, 6, 14)
    assert clock.next_open.isoformat() == "2024-06-17T09:30:00-04:00"
    assert clock.next_close.isoformat() == "2024-06-17T16:00:00-04:00"


def test_assets(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    aapl = client.get_asset("AAPL")
    assert aapl.symbol == "AAPL" and aapl.tradable and aapl.fractionable
    assert aapl.exchange in (AssetExchange.NASDAQ, AssetExchange.NYSE)
    assert client.get_asset(aapl.id).symbol == "AAPL"
    listed = client.get_all_assets(GetAssetsRequest(status="active"))
    assert {"AAPL", "MSFT", "NVDA"} <= {asset.symbol for asset in listed}
    unknown = error_of(lambda: client.get_asset("ZZZZ"))
    assert (unknown.status_code, unknown.code, unknown.message) == (404, 40410000, "asset not found for ZZZZ")


def test_orders_submitted_while_closed_are_accepted_then_fill_at_the_next_open(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    order = market_buy(client, "AAPL", 10, "red-1")
    assert (order.status, order.qty, order.filled_qty, order.client_order_id) == (
        OrderStatus.ACCEPTED, "10", "0", "red-1"
    )  # fmt: skip
    notional = client.submit_order(
        MarketOrderRequest(symbol="MSFT", notional=1000.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert (notional.notional, notional.qty) == ("1000.50", None)
    uuid.UUID(notional.client_order_id)  # generated when omitted
    assert client.get_all_positions() == []

    monday = sandbox.next_session()
    filled = client.get_order_by_id(order.id)
    assert filled.status == OrderStatus.FILLED
    assert float(filled.filled_avg_price) == pytest.approx(MARKET.bar("AAPL", monday).open)
    assert filled.filled_at.isoformat() == "2024-06-17T13:30:00+00:00"
    positions = {position.symbol: position for position in client.get_all_positions()}
    assert positions["AAPL"].qty == "10"
    assert float(positions["MSFT"].qty) == pytest.approx(1000.5 / MARKET.bar("MSFT", monday).open, rel=1e-6)
    account = client.get_account()
    cost = 10 * MARKET.bar("AAPL", monday).open + 1000.5
    assert float(account.cash) == pytest.approx(100_000 - cost, abs=0.02)
    assert float(account.equity) == pytest.approx(
        float(account.cash) + sum(float(p.market_value) for p in positions.values()), abs=0.02
    )


def test_duplicate_client_order_id_is_422_even_after_cancel(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    first = market_buy(client, "AAPL", 1, "once")
    duplicate = error_of(lambda: market_buy(client, "AAPL", 1, "once"))
    assert (duplicate.status_code, duplicate.code, duplicate.message) == (
        422, 40010001, "client_order_id must be unique"
    )  # fmt: skip
    assert client.cancel_order_by_id(first.id) is None
    assert client.get_order_by_client_id("once").status == OrderStatus.CANCELED
    assert error_of(lambda: market_buy(client, "AAPL", 1, "once")).status_code == 422
    # the same id in another account is fine (ids are unique per account)
    assert market_buy(trading(sandbox, key="blue-key"), "AAPL", 1, "once").status == OrderStatus.ACCEPTED


def test_insufficient_buying_power_and_qty_are_403(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    price = MARKET.latest_close("NVDA", sandbox.today)
    too_big = error_of(lambda: market_buy(client, "NVDA", int(100_000 / price) + 1))
    assert (too_big.status_code, too_big.code, too_big.message) == (
        403,
        40310000,
        "insufficient buying power",
    )
    body = too_big.response.json()
    assert body["buying_power"] == "100000.00" and float(body["cost_basis"]) > 100_000
    short = error_of(
        lambda: client.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=5, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
        )
    )
    assert short.status_code == 403
    assert short.message == "insufficient qty available for order (requested: 5, available: 0)"


def test_open_buys_reserve_buying_power(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    market_buy(client, "AAPL", 10)
    price = MARKET.latest_close("AAPL", sandbox.today)
    assert float(client.get_account().buying_power) == pytest.approx(100_000 - 10 * price * 1.03, abs=0.01)


def test_unknown_symbol_and_bad_orders_are_422(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    assert error_of(lambda: market_buy(client, "ZZZZ", 1)).status_code == 422
    gtc_notional = httpx.post(
        f"{sandbox.url}/v2/orders",
        headers={"APCA-API-KEY-ID": "team-key", "APCA-API-SECRET-KEY": "team-secret"},
        json={"symbol": "AAPL", "notional": 10, "side": "buy", "type": "market", "time_in_force": "gtc"},
    )
    assert gtc_notional.status_code == 422


def test_unknown_orders_and_positions_are_404(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    missing_id = uuid.uuid4()
    assert error_of(lambda: client.get_order_by_id(missing_id)).message == f"order not found for {missing_id}"
    assert error_of(lambda: client.get_order_by_client_id("nope")).status_code == 404
    assert error_of(lambda: client.cancel_order_by_id(missing_id)).status_code == 404
    no_position = error_of(lambda: client.get_open_position("AAPL"))
    assert (no_position.status_code, no_position.message) == (404, "position does not exist")
    assert error_of(lambda: client.close_position("AAPL")).status_code == 404


def test_list_orders_with_filters(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    ids = [market_buy(client, symbol, 1, f"list-{symbol}").id for symbol in ("AAPL", "MSFT", "NVDA")]
    client.cancel_order_by_id(ids[1])
    everything = client.get_orders(
        GetOrdersRequest(
            status=QueryOrderStatus.ALL, after=datetime(2024, 1, 1), direction="asc", nested=True
        )
    )
    assert [order.id for order in everything] == ids
    assert [o.symbol for o in client.get_orders()] == ["NVDA", "AAPL"]  # open, newest first
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.symbol for o in closed] == ["MSFT"]
    some = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["AAPL", "NVDA"], side=OrderSide.BUY, limit=1)
    )
    assert [o.symbol for o in some] == ["NVDA"]
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, until=datetime(2024, 1, 1))) == []


def test_cancel_all_answers_207(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    ids = {market_buy(client, symbol, 1).id for symbol in ("AAPL", "MSFT")}
    raw = httpx.delete(
        f"{sandbox.url}/v2/orders", headers={"APCA-API-KEY-ID": "k2", "APCA-API-SECRET-KEY": "s2"}
    )
    assert (raw.status_code, raw.json()) == (207, [])
    responses = client.cancel_orders()
    assert {response.id for response in responses} == ids
    assert {response.status for response in responses} == {200}
    assert client.get_orders() == []


def test_limit_and_gtc_orders(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    monday, tuesday = date(2024, 6, 17), date(2024, 6, 18)
    low_limit = round(MARKET.bar("AAPL", monday).low * 0.5, 2)
    day_limit = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=low_limit
        )
    )
    reachable = round(MARKET.bar("MSFT", tuesday).low + 0.01, 2)
    gtc = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=reachable
        )
    )
    sandbox.next_session()
    expired = client.get_order_by_id(day_limit.id)
    assert expired.status == OrderStatus.CANCELED  # a day order unfilled after its session
    assert expired.canceled_at.isoformat() == "2024-06-17T20:00:00+00:00"
    if MARKET.bar("MSFT", monday).low > reachable:
        assert client.get_order_by_id(gtc.id).status == OrderStatus.ACCEPTED
    sandbox.next_session()
    filled = client.get_order_by_id(gtc.id)
    assert filled.status == OrderStatus.FILLED
    assert float(filled.filled_avg_price) <= reachable


def test_positions_get_close_and_close_all_207(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        market_buy(client, symbol, 10)
    sandbox.next_session()
    position = client.get_open_position("AAPL")
    assert (position.qty, position.side.value, position.asset_class.value) == ("10", "long", "us_equity")
    assert client.get_open_position(position.asset_id).symbol == "AAPL"

    half = client.close_position("AAPL", ClosePositionRequest(percentage="50"))
    assert (half.side, half.qty, half.status) == (OrderSide.SELL, "5", OrderStatus.ACCEPTED)
    assert client.get_open_position("AAPL").qty_available == "5"
    client.close_position("MSFT", ClosePositionRequest(qty="4"))

    # close-all sells each whole position: shares already held for an open sell make it fail (403)
    responses = {response.symbol: response for response in client.close_all_positions(cancel_orders=False)}
    assert responses["NVDA"].status == 200 and responses["NVDA"].body.qty == "10"
    assert responses["AAPL"].status == 403
    assert (
        responses["AAPL"].body.message == "insufficient qty available for order (requested: 10, available: 5)"
    )
    assert responses["MSFT"].status == 403

    sandbox.next_session()
    assert {p.symbol: p.qty for p in client.get_all_positions()} == {"AAPL": "5", "MSFT": "6"}


def test_close_all_reports_failures_in_its_207_body(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    market_buy(client, "AAPL", 3)
    sandbox.next_session()
    client.close_position("AAPL")
    (response,) = client.close_all_positions(cancel_orders=False)
    assert response.status == 403
    assert response.body.message == "insufficient qty available for order (requested: 3, available: 0)"
    assert response.body.code == 40310000
    (cancelled_first,) = client.close_all_positions(cancel_orders=True)
    assert cancelled_first.status == 200


def test_a_split_multiplies_the_shares_held(sandbox: Sandbox) -> None:
    sandbox.set_today(date(2024, 6, 6))
    client = trading(sandbox)
    market_buy(client, "NVDA", 10)
    sandbox.next_session()  # filled Friday 2024-06-07
    before = client.get_open_position("NVDA")
    equity_before = float(client.get_account().equity)
    sandbox.next_session()  # NVDA splits 10:1 on Monday 2024-06-10
    after = client.get_open_position("NVDA")
    assert (before.qty, after.qty) == ("10", "100")
    assert after.cost_basis == before.cost_basis
    assert float(client.get_account().equity) == pytest.approx(equity_before, rel=0.15)  # one day's move
    sandbox.next_session()
    assert client.get_open_position("NVDA").qty == "100"  # applied once


def test_state_survives_a_restart(sandbox: Sandbox) -> None:
    client = trading(sandbox)
    order = market_buy(client, "AAPL", 2, "persisted")
    sandbox.stop()
    sandbox.start()
    client = trading(sandbox)
    assert client.get_order_by_client_id("persisted").id == order.id
    assert error_of(lambda: trading(sandbox, secret="other").get_account()).status_code == 401


def _gap_up(minimum: float) -> tuple[str, date]:
    """A (symbol, session) whose next open is more than ``minimum`` above its close."""
    for symbol in ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "IBM", "JPM", "XOM"):
        history = MARKET.history(symbol, date(2024, 12, 31))
        gaps = history["open"].shift(-1) / history["close"] - 1
        found = history.loc[(gaps > minimum) & (history["date"] >= "2010-01-01"), "date"]
        if len(found):
            return symbol, found.iloc[0].date()
    raise AssertionError("no gap in the synthetic market")


def test_a_buy_that_no_longer_fits_the_cash_at_the_open_is_rejected(sandbox: Sandbox) -> None:
    symbol, day = _gap_up(0.035)
    sandbox.set_today(day)
    client = trading(sandbox)
    qty = int(100_000 / (MARKET.bar(symbol, day).close * 1.03))  # reserves at close + 3 %: accepted
    order = market_buy(client, symbol, qty)
    sandbox.next_session()  # opens more than 3.5 % higher: the cost exceeds the cash
    rejected = client.get_order_by_id(order.id)
    assert rejected.status == OrderStatus.REJECTED and rejected.failed_at is not None
    assert client.get_account().cash == "100000.00"


def test_daily_bars_and_latest_bar(sandbox: Sandbox) -> None:
    data = StockHistoricalDataClient("team-key", "team-secret", url_override=sandbox.url)
    bars = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["MSFT", "AAPL"],
            timeframe=TimeFrame.Day,
            start=datetime(2024, 6, 3),
            end=datetime(2024, 6, 20),
        )
    )
    frame = bars.df
    assert list(frame.index.get_level_values("symbol").unique()) == ["AAPL", "MSFT"]
    aapl = frame.loc["AAPL"]
    assert len(aapl) == 10  # 2024-06-03 .. 2024-06-14: data stops at the sandbox's today
    assert aapl.index[0].isoformat() == "2024-06-03T04:00:00+00:00"  # midnight New York, in UTC
    june_14 = MARKET.bar("AAPL", date(2024, 6, 14))
    assert tuple(aapl.iloc[-1][["open", "high", "low", "close"]]) == (
        june_14.open, june_14.high, june_14.low, june_14.close
    )  # fmt: skip
    assert {"trade_count", "vwap"} <= set(frame.columns)

    paged = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day, start=datetime(2024, 1, 2))
    )
    assert len(paged.data["AAPL"]) == 115

    latest = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols=["AAPL", "ZZZZ"]))
    assert set(latest) == {"AAPL"} and latest["AAPL"].close == june_14.close

    empty = httpx.get(
        f"{sandbox.url}/v2/stocks/bars",
        params={"symbols": "ZZZZ", "timeframe": "1Day"},
        headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"},
    )
    assert empty.json() == {"bars": {}, "next_page_token": None}


def test_bars_paginate_with_an_opaque_token(sandbox: Sandbox) -> None:
    headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
    params = {"symbols": "AAPL,MSFT", "timeframe": "1Day", "start": "2024-06-03T00:00:00Z", "limit": "7"}
    first = httpx.get(f"{sandbox.url}/v2/stocks/bars", params=params, headers=headers).json()
    assert [len(rows) for rows in first["bars"].values()] == [7]
    second = httpx.get(
        f"{sandbox.url}/v2/stocks/bars",
        params={**params, "page_token": first["next_page_token"]},
        headers=headers,
    ).json()
    assert {symbol: len(rows) for symbol, rows in second["bars"].items()} == {"AAPL": 3, "MSFT": 4}


def test_broker_client_retries_429_and_5xx_only_and_surfaces_alpacas_code(sandbox: Sandbox) -> None:
    from mlops_pipeline.trading.broker_client import BrokerClient, BrokerError

    sleeps: list[float] = []
    client = BrokerClient(
        "k", "s", credentials_hint="K and S", trading_url=sandbox.url, data_url=sandbox.url,
        max_retries=2, retry_backoff_s=0.1, sleep=sleeps.append,
    )  # fmt: skip

    def fault(status: int, times: int) -> None:
        httpx.post(
            f"{sandbox.url}/_sandbox/alpaca/faults", json={"status": status, "times": times}
        ).raise_for_status()

    fault(429, 1)
    fault(503, 2)  # replaces the 429: two 503s, then success
    assert client.account().cash == 100_000
    assert sleeps == [0.1, 0.2]

    sleeps.clear()
    fault(500, 5)
    with pytest.raises(BrokerError) as exhausted:
        client.clock()
    assert (exhausted.value.status, exhausted.value.code, len(sleeps)) == (500, 50000000, 2)

    sleeps.clear()
    fault(400, 3)
    with pytest.raises(BrokerError) as not_retried:
        client.clock()
    assert not_retried.value.status == 400 and sleeps == []
    assert "HTTP 400 code 40000000: injected fault" in str(not_retried.value)
