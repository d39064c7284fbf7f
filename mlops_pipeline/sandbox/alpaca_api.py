"""Alpaca-compatible trading and market-data routes, for the real alpaca-py clients.

Point ``TradingClient(key, secret, url_override=URL)`` and
``StockHistoricalDataClient(key, secret, url_override=URL)`` at the sandbox. Served (all under
``/v2``):

* trading: ``GET account``, ``GET clock``, ``GET assets`` and ``assets/{symbol or id}``,
  ``POST/GET/DELETE orders`` (``DELETE`` answers 207), ``GET/DELETE orders/{id}``,
  ``GET orders:by_client_order_id``, ``GET/DELETE positions`` (``DELETE`` answers 207) and
  ``GET/DELETE positions/{symbol or asset id}``;
* market data: ``GET stocks/bars`` (daily bars only, ``timeframe=1Day``; raw prices, the
  ``adjustment`` and ``feed`` parameters are accepted and ignored) and ``GET stocks/bars/latest``.

Every request needs ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY``: without them the answer is
403 ``{"message": "forbidden."}``; any non-empty pair opens a $100,000 paper account on first
use, and the same key with another secret is refused with 401. Paper-trading semantics (fills at
the next session's open, cash accounts, errors) are described in
:mod:`mlops_pipeline.sandbox.alpaca_broker`. Market data stops at the sandbox's today.

``X-Sandbox-Session: YYYY-MM-DD`` (see :mod:`mlops_pipeline.sandbox.sessions`) makes that session
today for one request: ``GET clock`` answers as of its close, bars stop at it, orders are dated it
and the account is settled up to it. With alpaca-py, set it on the client's requests session:
``client._session.headers["X-Sandbox-Session"] = "2024-06-13"``. A refused session answers 422
``{"code": 40010001, "message": ...}`` before authentication; a session that is behind the
account's settled state answers 409 on the account routes (account, orders, positions) and is
served as usual on ``clock``, ``assets`` and the market data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE
from mlops_pipeline.sandbox.alpaca_broker import BrokerError, PaperBroker, unprocessable
from mlops_pipeline.sandbox.clock import SandboxClock
from mlops_pipeline.sandbox.market import Market
from mlops_pipeline.sandbox.sessions import SessionPolicy, SessionRefusedError

MAX_ORDERS_LIMIT = 500
DEFAULT_ORDERS_LIMIT = 50
MAX_BARS_LIMIT = 10_000
DEFAULT_BARS_LIMIT = 1_000
_TRUE = {"true", "1", "yes"}


def parse_bool(raw: str | None) -> bool:
    """alpaca-py sends ``True``/``False``; accept any case and ``1``."""
    return raw is not None and raw.strip().lower() in _TRUE


def parse_datetime(raw: str | None, field: str) -> datetime | None:
    """RFC 3339 with ``Z`` or an offset, or a plain date (midnight New York time)."""
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise unprocessable(f"{field}: invalid datetime {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=EXCHANGE_TIMEZONE if len(raw) == 10 else UTC)
    return moment


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable(f"limit must be an integer, got {raw!r}") from None
    return min(max(value, 1), maximum)


def parse_symbols(raw: str | None) -> list[str]:
    return [symbol.strip().upper() for symbol in (raw or "").split(",") if symbol.strip()]


def _choice(
    params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str | None
) -> str | None:
    value = params.get(name, default)
    if value is not None and value not in allowed:
        raise unprocessable(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _answer(action: Callable[[], Any], status_code: int = 200) -> Response:
    try:
        payload = action()
    except BrokerError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    if payload is None:
        return Response(status_code=204)
    return JSONResponse(payload, status_code=status_code)


def _bar_wire(day: date, row: Mapping[str, Any]) -> dict[str, Any]:
    """A daily bar stamped at midnight New York time, in UTC; ``n`` and ``vw`` always present."""
    stamp = datetime.combine(day, time(0), EXCHANGE_TIMEZONE).astimezone(UTC)
    volume = int(row["volume"])
    return {
        "t": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "o": float(row["open"]),
        "h": float(row["high"]),
        "l": float(row["low"]),
        "c": float(row["close"]),
        "v": volume,
        "n": max(volume // 150, 1),
        "vw": round((float(row["high"]) + float(row["low"]) + float(row["close"])) / 3, 4),
    }


class MarketDataRoutes:
    """``/v2/stocks/bars`` and ``/v2/stocks/bars/latest`` from the sandbox's market."""

    def __init__(self, market: Market, clock: SandboxClock) -> None:
        self.market = market
        self.clock = clock

    def _history(self, symbol: str) -> pd.DataFrame:
        if not self.market.is_listed(symbol):
            return pd.DataFrame()
        return self.market.history(symbol, self.clock.today())

    def bars(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbols = parse_symbols(params.get("symbols"))
        if not symbols:
            raise unprocessable("symbols is required", 42210000)
        if params.get("timeframe", "1Day") not in ("1Day", "1D"):
            raise unprocessable("the sandbox serves daily bars only (timeframe=1Day)", 42210000)
        today_start = datetime.combine(self.clock.today(), time(0), EXCHANGE_TIMEZONE)
        start = parse_datetime(params.get("start"), "start") or today_start
        end = parse_datetime(params.get("end"), "end")
        limit = parse_limit(params.get("limit"), DEFAULT_BARS_LIMIT, MAX_BARS_LIMIT)
        descending = _choice(params, "sort", ("asc", "desc"), "asc") == "desc"
        rows: list[tuple[str, dict[str, Any]]] = []
        for symbol in sorted(set(symbols)):
            history = self._history(symbol)
            if history.empty:
                continue
            mask = history["date"] >= _new_york_naive(start)  # bars are stamped at midnight New York
            if end is not None:
                mask &= history["date"] <= _new_york_naive(end)
            selected = history[mask]
            symbol_rows = [
                (symbol, _bar_wire(row["date"].date(), row)) for row in selected.to_dict("records")
            ]
            rows.extend(reversed(symbol_rows) if descending else symbol_rows)
        offset = _decode_token(params.get("page_token"))
        page = rows[offset : offset + limit]
        bars: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            bars.setdefault(symbol, []).append(bar)
        more = offset + limit < len(rows)
        return {"bars": bars, "next_page_token": _encode_token(offset + limit) if more else None}

    def latest_bars(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbols = parse_symbols(params.get("symbols"))
        if not symbols:
            raise unprocessable("symbols is required", 42210000)
        latest = {}
        for symbol in symbols:
            history = self._history(symbol)
            if len(history):
                row = history.iloc[-1].to_dict()
                latest[symbol] = _bar_wire(row["date"].date(), row)
        return {"bars": latest}


def _new_york_naive(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment).tz_convert(EXCHANGE_TIMEZONE).tz_localize(None)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sandbox:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        prefix, offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if prefix != "sandbox":
            raise ValueError(prefix)
        return int(offset)
    except ValueError:
        raise unprocessable("invalid page_token", 42210000) from None


class FaultRequest(BaseModel):
    status: int = Field(ge=400, le=599)
    times: int = Field(default=1, ge=1)


def alpaca_routers(broker: PaperBroker, sessions: SessionPolicy) -> list[APIRouter]:
    """The ``/v2`` routes of both alpaca-py clients over one paper broker and its market, and
    ``POST /_sandbox/alpaca/faults`` (``{"status": 503, "times": 2}``: the next ``times`` ``/v2``
    requests answer that status with a ``{"code", "message"}`` body). ``sessions`` says which
    ``X-Sandbox-Session`` values are served."""
    router = APIRouter(prefix="/v2")
    admin = APIRouter(prefix="/_sandbox/alpaca")
    data = MarketDataRoutes(broker.market, broker.clock)
    faults: list[int] = []

    @admin.post("/faults")
    async def inject_faults(fault: FaultRequest) -> FaultRequest:
        faults[:] = [fault.status] * fault.times
        return fault

    def answer(
        request: Request, action: Callable[[str], Any], status_code: int = 200, *, account: bool = True
    ) -> Response:
        """Authenticate (opening the account on first use) within the request's session, then
        answer with ``action(key)``; ``account=False`` for routes that read no account state."""

        def authenticated() -> Any:
            if faults:
                status = faults.pop(0)
                raise BrokerError(status, "injected fault", status * 100_000)
            try:
                session = sessions.from_request(request.headers)
            except SessionRefusedError as refused:
                raise unprocessable(str(refused)) from None
            with broker.clock.session(session):
                key = broker.authenticate(
                    request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")
                )
                if account and session is not None:
                    broker.check_session(key, session)
                return action(key)

        return _answer(authenticated, status_code)

    @router.get("/account")
    async def get_account(request: Request) -> Response:
        return answer(request, broker.account)

    @router.get("/clock")
    async def get_clock(request: Request) -> Response:
        return answer(request, lambda _: broker.clock_payload(), account=False)

    @router.get("/assets")
    async def get_assets(request: Request) -> Response:
        params = request.query_params

        return answer(
            request,
            lambda _: broker.assets(params.get("status"), params.get("asset_class"), params.get("exchange")),
            account=False,
        )

    @router.get("/assets/{symbol_or_id}")
    async def get_asset(request: Request, symbol_or_id: str) -> Response:
        return answer(request, lambda _: broker.asset(symbol_or_id), account=False)

    @router.post("/orders")
    async def submit_order(request: Request) -> Response:
        raw = await request.body()

        def action(key: str) -> dict[str, Any]:
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                raise unprocessable("request body must be JSON") from None
            if not isinstance(body, dict):
                raise unprocessable("request body must be a JSON object")
            return broker.submit(key, body)

        return answer(request, action)

    @router.get("/orders")
    async def list_orders(request: Request) -> Response:
        params = request.query_params

        def action(key: str) -> list[dict[str, Any]]:
            return broker.orders(
                key,
                status=_choice(params, "status", ("open", "closed", "all"), "open") or "open",
                limit=parse_limit(params.get("limit"), DEFAULT_ORDERS_LIMIT, MAX_ORDERS_LIMIT),
                after=parse_datetime(params.get("after"), "after"),
                until=parse_datetime(params.get("until"), "until"),
                direction=_choice(params, "direction", ("asc", "desc"), "desc") or "desc",
                side=_choice(params, "side", ("buy", "sell"), None),
                symbols=parse_symbols(params.get("symbols")) or None,
            )

        return answer(request, action)

    @router.delete("/orders")
    async def cancel_orders(request: Request) -> Response:
        return answer(request, broker.cancel_all, status_code=207)

    @router.get("/orders:by_client_order_id")
    async def order_by_client_id(request: Request) -> Response:
        client_order_id = request.query_params.get("client_order_id", "")
        return answer(request, lambda key: broker.order_by_client_id(key, client_order_id))

    @router.get("/orders/{order_id}")
    async def get_order(request: Request, order_id: str) -> Response:
        return answer(request, lambda key: broker.order(key, order_id))

    @router.delete("/orders/{order_id}")
    async def cancel_order(request: Request, order_id: str) -> Response:
        return answer(request, lambda key: broker.cancel(key, order_id))

    @router.get("/positions")
    async def list_positions(request: Request) -> Response:
        return answer(request, broker.positions)

    @router.delete("/positions")
    async def close_all_positions(request: Request) -> Response:
        cancel = parse_bool(request.query_params.get("cancel_orders"))
        return answer(request, lambda key: broker.close_all(key, cancel), status_code=207)

    @router.get("/positions/{symbol_or_id}")
    async def get_position(request: Request, symbol_or_id: str) -> Response:
        return answer(request, lambda key: broker.position(key, symbol_or_id))

    @router.delete("/positions/{symbol_or_id}")
    async def close_position(request: Request, symbol_or_id: str) -> Response:
        params = request.query_params

        def action(key: str) -> dict[str, Any]:
            qty, percentage = params.get("qty"), params.get("percentage")
            if qty is not None and percentage is not None:
                raise unprocessable("only one of qty or percentage may be given")
            try:
                return broker.close_position(
                    key,
                    symbol_or_id,
                    qty=float(qty) if qty is not None else None,
                    percentage=float(percentage) if percentage is not None else None,
                )
            except ValueError:
                raise unprocessable("qty and percentage must be numbers") from None

        return answer(request, action)

    @router.get("/stocks/bars")
    async def stock_bars(request: Request) -> Response:
        return answer(request, lambda _: data.bars(request.query_params), account=False)

    @router.get("/stocks/bars/latest")
    async def stock_latest_bars(request: Request) -> Response:
        return answer(request, lambda _: data.latest_bars(request.query_params), account=False)

    return [router, admin]
