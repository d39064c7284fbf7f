"""A thin, typed layer over alpaca-py's ``TradingClient`` and ``StockHistoricalDataClient``.

It adds what the SDK lacks: an HTTP timeout on every request, bounded retries with backoff for
429 and 5xx answers, timeouts and refused connections (the SDK's own fixed 3 s retries are
switched off), an order submission that is safe to retry (before each new attempt the order is
looked up by its ``client_order_id``, so an order accepted whose answer was lost is found, never
placed twice), and errors that say "broker" and carry Alpaca's status, code and message.
Authentication failures name the environment variables that hold the keys, never the keys.
alpaca-py is imported lazily (only when a client is built).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"


class BrokerError(RuntimeError):
    """A broker call failed: ``status`` (None when the broker was unreachable), Alpaca's ``code``."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class BrokerCredentialsError(BrokerError):
    """Keys missing from the environment or refused by the broker."""


@dataclass(frozen=True)
class AccountSnapshot:
    equity: float
    cash: float
    long_market_value: float
    buying_power: float


@dataclass(frozen=True)
class ClockSnapshot:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


def _error_parts(exc: Exception) -> tuple[int | None, int | None, str]:
    """Status, Alpaca code and message of an ``APIError`` (bodies may lack ``code`` or be non-JSON)."""
    status = getattr(exc, "status_code", None)
    text = str(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return status, None, text
    if not isinstance(body, dict):
        return status, None, text
    code = body.get("code")
    return status, code if isinstance(code, int) else None, str(body.get("message", text))


class BrokerClient:
    """One team's Alpaca account (paper unless built with ``paper=False``)."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        credentials_hint: str,
        paper: bool = True,
        trading_url: str | None = None,
        data_url: str | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        retry_backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        headers: dict[str, str] | None = None,
    ) -> None:
        from alpaca.data.historical import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        self.credentials_hint = credentials_hint
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self._sleep = sleep
        self.trading = TradingClient(api_key, secret_key, paper=paper, url_override=trading_url)
        self.data = StockHistoricalDataClient(api_key, secret_key, url_override=data_url)
        for client in (self.trading, self.data):
            _apply_timeout(client, timeout_s)
            client._retry = 0  # our own retries below; the SDK would sleep 3 s per 429/504
            client._session.headers.update(headers or {})

    def call(self, what: str, action: Callable[[], T]) -> T:
        """Run one SDK call with bounded retries on 429/5xx, timeouts and refused connections;
        raise :class:`BrokerError` otherwise."""
        attempt = 0
        while True:
            try:
                return self._once(what, action)
            except BrokerError as exc:
                if not _transient(exc) or attempt >= self.max_retries:
                    raise _gave_up(exc, attempt) from None
                attempt += 1
                self._sleep(self.retry_backoff_s * 2 ** (attempt - 1))

    def _once(self, what: str, action: Callable[[], T]) -> T:
        """One SDK call; every failure as :class:`BrokerError` (``status`` None: no answer)."""
        import requests
        from alpaca.common.exceptions import APIError

        try:
            return action()
        except APIError as exc:
            status, code, message = _error_parts(exc)
            if status in (401, 403) and code in (None, 40110000):
                raise BrokerCredentialsError(
                    f"broker: {what}: broker refused the keys (HTTP {status}: {message}); "
                    f"check {self.credentials_hint}",
                    status,
                    code,
                ) from None
            raise BrokerError(f"broker: {what}: HTTP {status} code {code}: {message}", status, code) from None
        except requests.RequestException as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "unreachable"
            raise BrokerError(f"broker: {what}: {kind}: {type(exc).__name__}: {exc}") from None

    def account(self) -> AccountSnapshot:
        account = self.call("get account", self.trading.get_account)
        return AccountSnapshot(
            equity=float(account.equity or 0),
            cash=float(account.cash or 0),
            long_market_value=float(account.long_market_value or 0),
            buying_power=float(account.buying_power or 0),
        )

    def clock(self) -> ClockSnapshot:
        clock = self.call("get clock", self.trading.get_clock)
        return ClockSnapshot(clock.timestamp, clock.is_open, clock.next_open, clock.next_close)

    def positions(self) -> list[dict[str, Any]]:
        """Every open position as a plain dict of Alpaca's Position fields."""
        positions = self.call("list positions", self.trading.get_all_positions)
        return [position.model_dump(mode="json") for position in positions]

    def latest_prices(self, symbols: list[str]) -> dict[str, float]:
        """The close of each symbol's latest daily bar (symbols without data are left out)."""
        from alpaca.data.requests import StockLatestBarRequest

        if not symbols:
            return {}
        request = StockLatestBarRequest(symbol_or_symbols=symbols)
        bars = self.call("latest bars", lambda: self.data.get_stock_latest_bar(request))
        return {symbol: float(bar.close) for symbol, bar in bars.items()}

    def submit_market_order(self, symbol: str, qty: float, side: str, client_order_id: str) -> dict[str, Any]:
        """A ``day`` market order; it executes in the next session when submitted while closed.

        A submission that got no answer or a 429/5xx may still have been accepted, so before each
        new attempt the order is looked up by its ``client_order_id``: one found is returned, and
        the order is placed again only when the broker does not know it.
        """
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(
            symbol=symbol,
            qty=qty,
            side=OrderSide(side),
            time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id,
        )
        what = f"submit {client_order_id}"
        attempt = 0
        while True:
            try:
                return self._once(what, lambda: self.trading.submit_order(request)).model_dump(mode="json")
            except BrokerError as exc:
                if not _transient(exc) or attempt >= self.max_retries:
                    raise _gave_up(exc, attempt) from None
            attempt += 1
            self._sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            placed = self.find_order_by_client_id(client_order_id)
            if placed is not None:
                return placed

    def find_order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        """The order with this ``client_order_id``, or None when the broker does not know it."""
        try:
            return self.order_by_client_id(client_order_id)
        except BrokerError as exc:
            if exc.status == 404:
                return None
            raise

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        order = self.call(
            f"get order {client_order_id}", lambda: self.trading.get_order_by_client_id(client_order_id)
        )
        return order.model_dump(mode="json")

    def orders_since(self, after: datetime, page_size: int = 500) -> list[dict[str, Any]]:
        """Every order submitted after ``after`` (any status), oldest first, paging through them."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        found: dict[str, dict[str, Any]] = {}
        cursor = after
        while True:
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL, limit=page_size, after=cursor, direction="asc"
            )
            page = self.call("list orders", lambda request=request: self.trading.get_orders(request))
            for order in page:
                found[str(order.id)] = order.model_dump(mode="json")
            if len(page) < page_size:
                return list(found.values())
            cursor = page[-1].submitted_at


def _transient(error: BrokerError) -> bool:
    """A failure worth another attempt: no answer (timeout, refused, dropped), 429 or 5xx."""
    return error.status is None or error.status in RETRY_STATUSES


def _gave_up(error: BrokerError, retries: int) -> BrokerError:
    """``error``, saying how many attempts were made when it was retried."""
    if retries == 0:
        return error
    return type(error)(f"{error.message} (gave up after {retries + 1} attempts)", error.status, error.code)


def _apply_timeout(client: Any, timeout_s: float) -> None:
    """Give every request of an SDK client a timeout (alpaca-py sets none)."""
    from requests.adapters import HTTPAdapter

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            kwargs["timeout"] = kwargs.get("timeout") or timeout_s
            return super().send(request, **kwargs)

    adapter = _TimeoutAdapter()
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
