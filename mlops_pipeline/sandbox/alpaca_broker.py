"""Paper-trading state and rules of the Alpaca sandbox: accounts, orders and positions in SQLite.

Accounts are keyed by API key: the first request with a non-empty key/secret pair opens a paper
account with ``starting_cash`` (default $100,000) and remembers a hash of the secret; a later
request with the same key and another secret is refused (401). Accounts are cash accounts
(``multiplier`` 1, no shorting): buys need buying power, sells need shares that are not already
held for another open sell order.

Time follows the sandbox clock. Its "today" counts as after the close, so the market is always
closed when a request arrives: orders are ``accepted`` and wait for the next session. When the
clock reaches that session (``PUT /_sandbox/clock``), pending orders are settled lazily on the
next request of the account, session by session, sells before buys:

* market orders fill at the session's open (notional orders buy ``notional / open`` shares);
* limit buys fill at ``min(open, limit)`` when the session's low reaches the limit, limit sells at
  ``max(open, limit)`` when its high does;
* a buy whose cost exceeds the cash at fill time is ``rejected``;
* a ``day`` order still unfilled after its session is ``canceled`` at that session's close; a
  ``gtc`` order stays open.

Splits of the market are applied to positions at the ex-date's open (shares times the
factor, same cost basis); like Alpaca paper, no dividends are paid. On a day a recording has no
bar for a symbol (a gap), its orders wait for the next recorded bar. Moving the clock backwards
changes nothing already settled.

Per-request sessions (``X-Sandbox-Session``, see :mod:`mlops_pipeline.sandbox.sessions`): inside a
request's session, "today" is that session. Orders submitted then are dated that session and fill
at the next session's open once a request for a later session (or the global clock) settles the
account; settlement only ever moves forward. A request whose session is behind the account, i.e.
when the account has already settled a session after it, could only answer with state from that
session's future, so the account routes refuse it with 409 ``{"code": 40910000, ...}`` (see
:meth:`PaperBroker.check_session`) and nothing is changed; a request for the account's own latest
session, or without a session, is served as usual.

Request timestamps are the sandbox's today after the close: 16:00 New York time plus the real time
of day compressed six-fold, so they stay in order within a day. Every write is one SQLite
transaction; with a file path the state survives restarts.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from mlops_pipeline.market.calendar import (
    EXCHANGE_TIMEZONE,
    next_trading_day,
    previous_trading_day,
    session_close,
    trading_days,
)
from mlops_pipeline.sandbox.clock import SandboxClock
from mlops_pipeline.sandbox.market import Market, NoBarError

STARTING_CASH = 100_000.0
MARKET_BUY_PRICE_BUFFER = 0.03  # market buys reserve buying power at the last close + 3%
MAX_CLIENT_ORDER_ID_LENGTH = 128
OPEN_STATUSES = ("accepted", "new", "partially_filled")
_NAMESPACE = uuid.UUID("6f1c1a5e-8d4b-4c1e-9a57-2f0d3f6b9a10")
_SESSION_OPEN = time(9, 30)
_AFTER_CLOSE = time(16, 0)
_EXCHANGES = ("NASDAQ", "NYSE")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    api_key TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    id TEXT NOT NULL,
    account_number TEXT NOT NULL,
    cash REAL NOT NULL,
    created_at TEXT NOT NULL,
    settled_through TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    api_key TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    qty REAL,
    notional REAL,
    limit_price REAL,
    status TEXT NOT NULL,
    filled_qty REAL NOT NULL DEFAULT 0,
    filled_avg_price REAL,
    submitted_day TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    filled_at TEXT,
    canceled_at TEXT,
    failed_at TEXT,
    UNIQUE (api_key, client_order_id)
);
CREATE TABLE IF NOT EXISTS positions (
    api_key TEXT NOT NULL,
    symbol TEXT NOT NULL,
    qty REAL NOT NULL,
    cost_basis REAL NOT NULL,
    PRIMARY KEY (api_key, symbol)
);
"""


class BrokerError(Exception):
    """An Alpaca error answer: HTTP ``status`` and a ``{"code", "message", ...}`` body."""

    def __init__(self, status: int, message: str, code: int | None = None, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = (
            {"message": message} if code is None else {"code": code, "message": message}
        )
        self.body.update(extra)


def not_found(message: str) -> BrokerError:
    return BrokerError(404, message, 40410000)


def unprocessable(message: str, code: int = 40010001) -> BrokerError:
    return BrokerError(422, message, code)


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"asset:{symbol}"))


def format_money(value: float) -> str:
    return f"{value:.2f}"


def format_qty(value: float) -> str:
    text = f"{round(value, 9):.9f}".rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text


def format_price(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _at(day: date, clock_time: time) -> datetime:
    return datetime.combine(day, clock_time, EXCHANGE_TIMEZONE)


@dataclass(frozen=True)
class OrderRequest:
    """A validated ``POST /v2/orders`` body."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: float | None
    notional: float | None
    limit_price: float | None
    client_order_id: str

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> OrderRequest:
        symbol = str(body.get("symbol") or "").upper()
        if not symbol:
            raise unprocessable("symbol is required")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise unprocessable(f"invalid side: {side!r}")
        order_type = body.get("type", body.get("order_type"))
        if order_type not in ("market", "limit"):
            raise unprocessable(f"order type {order_type!r} is not supported (market, limit)")
        tif = body.get("time_in_force")
        if tif not in ("day", "gtc"):
            raise unprocessable(f"time_in_force {tif!r} is not supported (day, gtc)")
        if body.get("extended_hours"):
            raise unprocessable('only type="limit" is allowed for extended hours orders')
        if body.get("order_class") not in (None, "", "simple"):
            raise unprocessable("only simple orders are supported")
        qty, notional = _positive(body, "qty"), _positive(body, "notional")
        if (qty is None) == (notional is None):
            raise unprocessable("exactly one of qty or notional is required")
        limit_price = _positive(body, "limit_price")
        if order_type == "limit" and limit_price is None:
            raise unprocessable("limit_price is required for limit orders")
        if order_type == "market" and limit_price is not None:
            raise unprocessable("limit_price must not be set for market orders")
        fractional = qty is not None and not float(qty).is_integer()
        if (notional is not None or fractional) and (order_type != "market" or tif != "day"):
            raise unprocessable("fractional orders must be DAY orders", 42210000)
        client_order_id = str(body.get("client_order_id") or uuid.uuid4())
        if len(client_order_id) > MAX_CLIENT_ORDER_ID_LENGTH:
            raise unprocessable("client_order_id must be at most 128 characters")
        return cls(symbol, side, order_type, tif, qty, notional, limit_price, client_order_id)


def _positive(body: Mapping[str, Any], field: str) -> float | None:
    raw = body.get(field)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise unprocessable(f"{field} must be a number") from None
    if not math.isfinite(value) or value <= 0:
        raise unprocessable(f"{field} must be > 0")
    return value


class PaperBroker:
    """The paper accounts of the sandbox, answering with Alpaca's wire objects (plain dicts)."""

    def __init__(
        self,
        market: Market,
        clock: SandboxClock,
        db_path: Path | None = None,
        starting_cash: float = STARTING_CASH,
        asset_symbols: frozenset[str] = frozenset(),
    ) -> None:
        self.market = market
        self.clock = clock
        self.starting_cash = starting_cash
        self.asset_symbols = asset_symbols
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(db_path) if db_path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- time -------------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The sandbox's current moment: its today after the close (see the module docstring)."""
        real = datetime.now(EXCHANGE_TIMEZONE)
        since_midnight = timedelta(hours=real.hour, minutes=real.minute, seconds=real.second) + timedelta(
            microseconds=real.microsecond
        )
        return _at(self.clock.today(), _AFTER_CLOSE) + since_midnight / 6

    def clock_payload(self) -> dict[str, Any]:
        session = next_trading_day(self.clock.today())
        return {
            "timestamp": self.now().isoformat(),
            "is_open": False,
            "next_open": _at(session, _SESSION_OPEN).isoformat(),
            "next_close": session_close(session).isoformat(),
        }

    # -- accounts ---------------------------------------------------------------------------------
    def authenticate(self, api_key: str | None, secret: str | None) -> str:
        """The account's key; opens the account on first use. Missing keys: 403; wrong secret: 401."""
        if not api_key or not secret:
            raise BrokerError(403, "forbidden.")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        row = self._db.execute("SELECT secret_sha256 FROM accounts WHERE api_key = ?", (api_key,)).fetchone()
        if row is None:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        api_key,
                        digest,
                        str(uuid.uuid5(_NAMESPACE, f"account:{api_key}")),
                        "PA" + hashlib.sha256(api_key.encode()).hexdigest()[:10].upper(),
                        self.starting_cash,
                        _utc_text(self.now()),
                        self.clock.today().isoformat(),
                    ),
                )
        elif row["secret_sha256"] != digest:
            raise BrokerError(401, "request is not authorized", 40110000)
        self._settle(api_key)
        return api_key

    def check_session(self, key: str, session: date) -> None:
        """Refuse (409) a request for ``session`` when the account has settled a later session."""
        row = self._db.execute("SELECT settled_through FROM accounts WHERE api_key = ?", (key,)).fetchone()
        settled = date.fromisoformat(row["settled_through"])
        if next_trading_day(session) <= settled:
            raise BrokerError(
                409,
                f"sandbox session {session} is behind this account, which is settled through {settled}; "
                "paper accounts only move forward (use a session on or after it, or another API key)",
                40910000,
            )

    def account(self, key: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM accounts WHERE api_key = ?", (key,)).fetchone()
        today = self.clock.today()
        positions = self._positions(key)
        long_value = sum(qty * self._price(symbol, today) for symbol, qty, _ in positions)
        previous_value = sum(
            qty * self._price(symbol, previous_trading_day(today)) for symbol, qty, _ in positions
        )
        cash = float(row["cash"])
        equity = cash + long_value
        buying_power = cash - self._reserved_for_buys(key)
        money = {
            "buying_power": buying_power,
            "regt_buying_power": buying_power,
            "non_marginable_buying_power": buying_power,
            "options_buying_power": buying_power,
            "cash": cash,
            "accrued_fees": 0.0,
            "pending_transfer_in": 0.0,
            "pending_transfer_out": 0.0,
            "portfolio_value": equity,
            "equity": equity,
            "last_equity": cash + previous_value,
            "long_market_value": long_value,
            "short_market_value": 0.0,
            "initial_margin": long_value,
            "maintenance_margin": long_value * 0.3,
            "last_maintenance_margin": previous_value * 0.3,
            "sma": 0.0,
        }
        return {
            "id": row["id"],
            "account_number": row["account_number"],
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            **{name: format_money(value) for name, value in money.items()},
            "multiplier": "1",
            "shorting_enabled": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "created_at": row["created_at"],
        }

    # -- assets -----------------------------------------------------------------------------------
    def asset(self, symbol_or_id: str) -> dict[str, Any]:
        symbol = symbol_or_id.upper()
        if not self.market.is_listed(symbol):
            by_id = {asset_id(known): known for known in self._known_symbols()}
            if symbol_or_id not in by_id:
                raise not_found(f"asset not found for {symbol_or_id}")
            symbol = by_id[symbol_or_id]
        exchange = _EXCHANGES[int(hashlib.sha256(symbol.encode()).hexdigest(), 16) % len(_EXCHANGES)]
        return {
            "id": asset_id(symbol),
            "class": "us_equity",
            "exchange": exchange,
            "symbol": symbol,
            "name": f"{symbol} (sandbox)",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": False,
            "easy_to_borrow": False,
            "fractionable": True,
            "min_order_size": 0.0001,
            "min_trade_increment": 0.0001,
            "price_increment": 0.01,
            "attributes": ["fractional_eh_enabled"],
        }

    def assets(self, status: str | None, asset_class: str | None, exchange: str | None) -> list[dict]:
        found = [self.asset(symbol) for symbol in sorted(self._known_symbols())]
        return [
            asset
            for asset in found
            if status in (None, asset["status"])
            and asset_class in (None, asset["class"])
            and exchange in (None, asset["exchange"])
        ]

    def _known_symbols(self) -> set[str]:
        rows = self._db.execute("SELECT DISTINCT symbol FROM orders").fetchall()
        return {*self.asset_symbols, *(row["symbol"] for row in rows)}

    # -- orders -----------------------------------------------------------------------------------
    def submit(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = OrderRequest.parse(body)
        if not self.market.is_listed(request.symbol):
            raise unprocessable(f'asset "{request.symbol}" not found', 42210000)
        today = self.clock.today()
        with self._transaction() as db:
            duplicate = db.execute(
                "SELECT 1 FROM orders WHERE api_key = ? AND client_order_id = ?",
                (key, request.client_order_id),
            ).fetchone()
            if duplicate:
                raise unprocessable("client_order_id must be unique")
            opposite = "sell" if request.side == "buy" else "buy"
            if self._open_orders(key, request.symbol, opposite):
                raise unprocessable("potential wash trade detected. use complex orders", 42210000)
            if request.side == "buy":
                self._check_buying_power(key, request, today)
            else:
                self._check_sell_qty(key, request, today)
            now = _utc_text(self.now())
            order_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO orders (id, api_key, client_order_id, symbol, side, type, time_in_force, qty, "
                "notional, limit_price, status, submitted_day, submitted_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?)",
                (
                    order_id,
                    key,
                    request.client_order_id,
                    request.symbol,
                    request.side,
                    request.type,
                    request.time_in_force,
                    request.qty,
                    request.notional,
                    request.limit_price,
                    today.isoformat(),
                    now,
                    now,
                ),
            )
        return self.order(key, order_id)

    def _check_buying_power(self, key: str, request: OrderRequest, today: date) -> None:
        cost = self._reservation(request.symbol, request.qty, request.notional, request.limit_price, today)
        cash = self._db.execute("SELECT cash FROM accounts WHERE api_key = ?", (key,)).fetchone()["cash"]
        buying_power = cash - self._reserved_for_buys(key)
        if cost > buying_power + 1e-9:
            raise BrokerError(
                403,
                "insufficient buying power",
                40310000,
                buying_power=format_money(buying_power),
                cost_basis=format_money(cost),
            )

    def _check_sell_qty(self, key: str, request: OrderRequest, today: date) -> None:
        held = self._held_qty(key, request.symbol)
        on_order = sum(self._order_qty(row, today) for row in self._open_orders(key, request.symbol, "sell"))
        available = max(held - on_order, 0.0)
        wanted = (
            request.qty if request.qty is not None else request.notional / self._price(request.symbol, today)
        )
        if wanted > available + 1e-9:
            raise BrokerError(
                403,
                f"insufficient qty available for order (requested: {format_qty(wanted)}, "
                f"available: {format_qty(available)})",
                40310000,
                available=format_qty(available),
                existing_qty=format_qty(held),
                held_for_orders=format_qty(on_order),
                symbol=request.symbol,
            )

    def order(self, key: str, order_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT * FROM orders WHERE api_key = ? AND id = ?", (key, order_id)
        ).fetchone()
        if row is None:
            raise not_found(f"order not found for {order_id}")
        return order_wire(row)

    def order_by_client_id(self, key: str, client_order_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT * FROM orders WHERE api_key = ? AND client_order_id = ?", (key, client_order_id)
        ).fetchone()
        if row is None:
            raise not_found(f"order not found for {client_order_id}")
        return order_wire(row)

    def orders(
        self,
        key: str,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        side: str | None = None,
        symbols: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        clauses, params = ["api_key = ?"], [key]
        marks = ", ".join("?" * len(OPEN_STATUSES))
        if status == "open":
            clauses.append(f"status IN ({marks})")
            params += OPEN_STATUSES
        elif status == "closed":
            clauses.append(f"status NOT IN ({marks})")
            params += OPEN_STATUSES
        if after is not None:
            clauses.append("submitted_at > ?")
            params.append(_utc_text(after))
        if until is not None:
            clauses.append("submitted_at < ?")
            params.append(_utc_text(until))
        if side is not None:
            clauses.append("side = ?")
            params.append(side)
        if symbols:
            clauses.append(f"symbol IN ({', '.join('?' * len(symbols))})")
            params += [symbol.upper() for symbol in symbols]
        order = "ASC" if direction == "asc" else "DESC"
        rows = self._db.execute(
            f"SELECT * FROM orders WHERE {' AND '.join(clauses)} "  # noqa: S608 (fixed fragments)
            f"ORDER BY submitted_at {order}, seq {order} LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [order_wire(row) for row in rows]

    def cancel(self, key: str, order_id: str) -> None:
        row = self._db.execute(
            "SELECT * FROM orders WHERE api_key = ? AND id = ?", (key, order_id)
        ).fetchone()
        if row is None:
            raise not_found(f"order not found for {order_id}")
        if row["status"] not in OPEN_STATUSES:
            raise unprocessable(f'order is already in "{row["status"]}" state', 42210000)
        with self._transaction() as db:
            self._mark_canceled(db, order_id, self.now())

    def cancel_all(self, key: str) -> list[dict[str, Any]]:
        """``DELETE /v2/orders``: cancel every open order; one 207 entry per order."""
        marks = ", ".join("?" * len(OPEN_STATUSES))
        rows = self._db.execute(
            f"SELECT id FROM orders WHERE api_key = ? AND status IN ({marks}) ORDER BY seq",  # noqa: S608
            (key, *OPEN_STATUSES),
        ).fetchall()
        now = self.now()
        with self._transaction() as db:
            for row in rows:
                self._mark_canceled(db, row["id"], now)
        return [{"id": row["id"], "status": 200} for row in rows]

    @staticmethod
    def _mark_canceled(db: sqlite3.Connection, order_id: str, moment: datetime) -> None:
        stamp = _utc_text(moment)
        db.execute(
            "UPDATE orders SET status = 'canceled', canceled_at = ?, updated_at = ? WHERE id = ?",
            (stamp, stamp, order_id),
        )

    # -- positions --------------------------------------------------------------------------------
    def positions(self, key: str) -> list[dict[str, Any]]:
        return [self._position_wire(key, symbol, qty, cost) for symbol, qty, cost in self._positions(key)]

    def position(self, key: str, symbol_or_id: str) -> dict[str, Any]:
        for symbol, qty, cost in self._positions(key):
            if symbol_or_id.upper() == symbol or symbol_or_id == asset_id(symbol):
                return self._position_wire(key, symbol, qty, cost)
        raise not_found("position does not exist")

    def close_position(
        self, key: str, symbol_or_id: str, qty: float | None = None, percentage: float | None = None
    ) -> dict[str, Any]:
        """Submit the liquidating market sell (all of it, ``qty`` shares or ``percentage`` %)."""
        position = self.position(key, symbol_or_id)
        held = float(position["qty"])
        if qty is not None:
            amount = qty
        elif percentage is not None:
            amount = held * percentage / 100
        else:
            amount = held
        if amount <= 0:
            raise unprocessable("qty or percentage must be > 0")
        return self.submit(
            key,
            {
                "symbol": position["symbol"],
                "qty": round(amount, 9),
                "side": "sell",
                "type": "market",
                "time_in_force": "day",
            },
        )

    def close_all(self, key: str, cancel_orders: bool) -> list[dict[str, Any]]:
        """``DELETE /v2/positions``: one 207 entry per position, failures included."""
        if cancel_orders:
            self.cancel_all(key)
        results = []
        for symbol, _, _ in self._positions(key):
            try:
                body = self.close_position(key, symbol)
                results.append({"symbol": symbol, "status": 200, "order_id": body["id"], "body": body})
            except BrokerError as exc:
                results.append({"symbol": symbol, "status": exc.status, "body": exc.body})
        return results

    def _positions(self, key: str) -> list[tuple[str, float, float]]:
        rows = self._db.execute(
            "SELECT symbol, qty, cost_basis FROM positions WHERE api_key = ? ORDER BY symbol", (key,)
        ).fetchall()
        return [(row["symbol"], float(row["qty"]), float(row["cost_basis"])) for row in rows]

    def _held_qty(self, key: str, symbol: str) -> float:
        row = self._db.execute(
            "SELECT qty FROM positions WHERE api_key = ? AND symbol = ?", (key, symbol)
        ).fetchone()
        return float(row["qty"]) if row else 0.0

    def _position_wire(self, key: str, symbol: str, qty: float, cost_basis: float) -> dict[str, Any]:
        today = self.clock.today()
        price = self._price(symbol, today)
        last = self._price(symbol, previous_trading_day(today))
        on_order = sum(self._order_qty(row, today) for row in self._open_orders(key, symbol, "sell"))
        market_value = qty * price
        unrealized = market_value - cost_basis
        intraday = qty * (price - last)
        return {
            "asset_id": asset_id(symbol),
            "symbol": symbol,
            "exchange": self.asset(symbol)["exchange"],
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": format_price(cost_basis / qty),
            "qty": format_qty(qty),
            "qty_available": format_qty(max(qty - on_order, 0.0)),
            "side": "long",
            "market_value": format_money(market_value),
            "cost_basis": format_money(cost_basis),
            "unrealized_pl": format_money(unrealized),
            "unrealized_plpc": f"{unrealized / cost_basis:.6f}" if cost_basis else "0",
            "unrealized_intraday_pl": format_money(intraday),
            "unrealized_intraday_plpc": f"{(price - last) / last:.6f}",
            "current_price": format_price(price),
            "lastday_price": format_price(last),
            "change_today": f"{(price - last) / last:.6f}",
        }

    # -- settlement -------------------------------------------------------------------------------
    def _open_orders(self, key: str, symbol: str | None = None, side: str | None = None) -> list[sqlite3.Row]:
        marks = ", ".join("?" * len(OPEN_STATUSES))
        rows = self._db.execute(
            f"SELECT * FROM orders WHERE api_key = ? AND status IN ({marks}) ORDER BY seq",  # noqa: S608
            (key, *OPEN_STATUSES),
        ).fetchall()
        return [row for row in rows if symbol in (None, row["symbol"]) and side in (None, row["side"])]

    def _price(self, symbol: str, day: date) -> float:
        return self.market.latest_close(symbol, day)

    def _order_qty(self, row: sqlite3.Row, today: date) -> float:
        if row["qty"] is not None:
            return float(row["qty"])
        return float(row["notional"]) / self._price(row["symbol"], today)

    def _reservation(
        self, symbol: str, qty: float | None, notional: float | None, limit: float | None, today: date
    ) -> float:
        if notional is not None:
            return notional
        assert qty is not None
        if limit is not None:
            return qty * limit
        return qty * self._price(symbol, today) * (1 + MARKET_BUY_PRICE_BUFFER)

    def _reserved_for_buys(self, key: str) -> float:
        today = self.clock.today()
        return sum(
            self._reservation(row["symbol"], row["qty"], row["notional"], row["limit_price"], today)
            for row in self._open_orders(key, side="buy")
        )

    def _settle(self, key: str) -> None:
        """Run every session after the account's last settled day up to today: apply splits to
        positions at the open, then fill, reject or expire the open orders."""
        today = self.clock.today()
        row = self._db.execute("SELECT settled_through FROM accounts WHERE api_key = ?", (key,)).fetchone()
        settled = date.fromisoformat(row["settled_through"])
        if today <= settled:
            return
        with self._transaction() as db:
            for stamp in trading_days(next_trading_day(settled), today):
                session = stamp.date()
                self._apply_splits(db, key, session)
                eligible = [
                    order
                    for order in self._open_orders(key)
                    if next_trading_day(date.fromisoformat(order["submitted_day"])) <= session
                ]
                for order in sorted(eligible, key=lambda order: (order["side"] != "sell", order["seq"])):
                    self._execute(db, key, order, session)
            db.execute("UPDATE accounts SET settled_through = ? WHERE api_key = ?", (today.isoformat(), key))

    def _apply_splits(self, db: sqlite3.Connection, key: str, session: date) -> None:
        """A split on ``session`` multiplies the shares held (the cost basis stays)."""
        for symbol, qty, _ in self._positions(key):
            try:
                factor = self.market.bar(symbol, session).split_coefficient
            except NoBarError:  # a gap in a recording: no event that day
                continue
            if factor != 1.0:
                db.execute(
                    "UPDATE positions SET qty = ? WHERE api_key = ? AND symbol = ?",
                    (round(qty * factor, 9), key, symbol),
                )

    def _execute(self, db: sqlite3.Connection, key: str, row: sqlite3.Row, session: date) -> None:
        try:
            bar = self.market.bar(row["symbol"], session)
        except NoBarError:  # a gap in a recording: the order waits for the next recorded bar
            return
        limit = row["limit_price"]
        if row["side"] == "buy":
            price = bar.open if limit is None else min(bar.open, limit)
            crossed = limit is None or bar.low <= limit
        else:
            price = bar.open if limit is None else max(bar.open, limit)
            crossed = limit is None or bar.high >= limit
        if not crossed:
            if row["time_in_force"] == "day":  # its only session ended unfilled
                self._mark_canceled(db, row["id"], session_close(session))
            return
        qty = float(row["qty"]) if row["qty"] is not None else round(float(row["notional"]) / price, 9)
        fill_time = _utc_text(_at(session, _SESSION_OPEN))
        cash = float(db.execute("SELECT cash FROM accounts WHERE api_key = ?", (key,)).fetchone()["cash"])
        held = self._held_qty(key, row["symbol"])
        position = db.execute(
            "SELECT cost_basis FROM positions WHERE api_key = ? AND symbol = ?", (key, row["symbol"])
        ).fetchone()
        cost_basis = float(position["cost_basis"]) if position else 0.0
        if row["side"] == "buy":
            cost = round(qty * price, 2)
            if cost > cash + 1e-9:
                db.execute(
                    "UPDATE orders SET status = 'rejected', failed_at = ?, updated_at = ? WHERE id = ?",
                    (fill_time, fill_time, row["id"]),
                )
                return
            cash -= cost
            new_qty, new_cost = held + qty, cost_basis + cost
        else:
            qty = min(qty, held)
            if qty <= 0:
                db.execute(
                    "UPDATE orders SET status = 'rejected', failed_at = ?, updated_at = ? WHERE id = ?",
                    (fill_time, fill_time, row["id"]),
                )
                return
            cash += round(qty * price, 2)
            new_qty, new_cost = held - qty, cost_basis * (held - qty) / held
        db.execute("UPDATE accounts SET cash = ? WHERE api_key = ?", (round(cash, 2), key))
        if new_qty > 1e-9:
            db.execute(
                "INSERT INTO positions VALUES (?, ?, ?, ?) ON CONFLICT (api_key, symbol) "
                "DO UPDATE SET qty = excluded.qty, cost_basis = excluded.cost_basis",
                (key, row["symbol"], round(new_qty, 9), new_cost),
            )
        else:
            db.execute("DELETE FROM positions WHERE api_key = ? AND symbol = ?", (key, row["symbol"]))
        db.execute(
            "UPDATE orders SET status = 'filled', filled_qty = ?, filled_avg_price = ?, filled_at = ?, "
            "updated_at = ? WHERE id = ?",
            (qty, price, fill_time, fill_time, row["id"]),
        )


def order_wire(row: sqlite3.Row) -> dict[str, Any]:
    """Every key of Alpaca's Order object, money and quantities as strings, nulls included."""
    return {
        "id": row["id"],
        "client_order_id": row["client_order_id"],
        "created_at": row["submitted_at"],
        "updated_at": row["updated_at"],
        "submitted_at": row["submitted_at"],
        "filled_at": row["filled_at"],
        "expired_at": None,
        "expires_at": None,
        "canceled_at": row["canceled_at"],
        "failed_at": row["failed_at"],
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id(row["symbol"]),
        "symbol": row["symbol"],
        "asset_class": "us_equity",
        "notional": None if row["notional"] is None else format_money(row["notional"]),
        "qty": None if row["qty"] is None else format_qty(row["qty"]),
        "filled_qty": format_qty(row["filled_qty"]),
        "filled_avg_price": format_price(row["filled_avg_price"]),
        "order_class": "",
        "order_type": row["type"],
        "type": row["type"],
        "side": row["side"],
        "position_intent": "buy_to_open" if row["side"] == "buy" else "sell_to_close",
        "time_in_force": row["time_in_force"],
        "limit_price": format_price(row["limit_price"]),
        "stop_price": None,
        "status": row["status"],
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
        "commission": "0",
    }
