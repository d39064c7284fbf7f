"""AlphaVantage ``GET /query`` emulation: request validation, limits and wire rendering.

Served functions: ``TIME_SERIES_DAILY`` (``outputsize=compact``: the latest 100 sessions; ``full``
needs a premium key) and ``TIME_SERIES_DAILY_ADJUSTED`` (premium keys only), as JSON or as CSV
(``datatype=csv``: CRLF line ends, newest first). Every other function "does not exist".

Key model:

* a missing or empty ``apikey`` gets the "invalid or missing" error;
* ``demo`` is the demo key: it only works for the configured demo symbols (``IBM``), with premium
  access and no limits;
* keys in ``SandboxConfig.premium_keys`` (default ``sandbox-premium``) are premium: no limits;
* any other non-empty key is a free key: ``daily_limit`` requests per sandbox day (changing the
  sandbox clock starts a new day; a request with a session counts against that session's day) and,
  if set, at most ``burst_per_second`` requests per second.

Like the real service, every answer is HTTP 200; errors, throttling and premium gates are one-key
JSON bodies (also for CSV requests), worded exactly as AlphaVantage words them. Data stops at the
sandbox's today, which counts as after the close; a request's session (``X-Sandbox-Session`` or
``sandbox_session``, see :mod:`mlops_pipeline.sandbox.sessions`) is its today. The one exception
to HTTP 200 is a refused session, which the server answers with HTTP 400 and an ``Error Message``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import pandas as pd

from mlops_pipeline.market.alphavantage import daily_csv, newest_first_rows, wire_fields
from mlops_pipeline.sandbox.clock import SandboxClock
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.market import Market

DAILY = "TIME_SERIES_DAILY"
DAILY_ADJUSTED = "TIME_SERIES_DAILY_ADJUSTED"
DEMO_KEY = "demo"
COMPACT_ROWS = 100
JSON_MEDIA_TYPE = "application/json"
CSV_MEDIA_TYPE = "text/csv"

_PREMIUM_URL = "https://www.alphavantage.co/premium/"
MISSING_API_KEY_MESSAGE = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
DEMO_KEY_MESSAGE = (
    "The **demo** API key is for demo purposes only. Please claim your free API key at "
    "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. "
    "It takes fewer than 20 seconds."
)
BURST_MESSAGE = (
    "Thank you for using Alpha Vantage! Please consider spreading out your free API requests more "
    f"sparingly (1 request per second). You may subscribe to any of the premium plans at {_PREMIUM_URL} "
    "to lift the free key rate limit (25 requests per day), raise the per-second burst limit, and "
    "instantly unlock all premium endpoints"
)
PREMIUM_ENDPOINT_MESSAGE = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the "
    f"premium plans at {_PREMIUM_URL} to instantly unlock all premium endpoints"
)
_FREE_DAILY_LIMIT = 25

_DAILY_INFORMATION = "Daily Prices (open, high, low, close) and Volumes"
_ADJUSTED_INFORMATION = "Daily Time Series with Splits and Dividend Events"
_OUTPUT_SIZE_NAMES = {"compact": "Compact", "full": "Full size"}
_DAILY_FIELDS = ("1. open", "2. high", "3. low", "4. close", "5. volume")
_ADJUSTED_FIELDS = (
    "1. open",
    "2. high",
    "3. low",
    "4. close",
    "5. adjusted close",
    "6. volume",
    "7. dividend amount",
    "8. split coefficient",
)


def invalid_call_message(function: str) -> str:
    return (
        "Invalid API call. Please retry or visit the documentation "
        f"(https://www.alphavantage.co/documentation/) for {function}."
    )


def unknown_function_message(function: str) -> str:
    return f"This API function ({function}) does not exist."


def daily_quota_message(api_key: str, daily_limit: int) -> str:
    return (
        f"We have detected your API key as {api_key} and our standard API rate limit is {daily_limit} "
        f"requests per day. Please subscribe to any of the premium plans at {_PREMIUM_URL} to instantly "
        "remove all daily rate limits."
    )


def premium_outputsize_message(function: str) -> str:
    return (
        f"Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium feature "
        f"for the {function} endpoint. You may subscribe to any of the premium plans at {_PREMIUM_URL} "
        "to instantly unlock all premium features"
    )


@dataclass(frozen=True)
class WireResponse:
    """A rendered ``/query`` answer (always HTTP 200)."""

    body: str
    media_type: str


def json_response(payload: Mapping[str, object]) -> WireResponse:
    return WireResponse(json.dumps(payload, indent=4), JSON_MEDIA_TYPE)


def error_response(message: str) -> WireResponse:
    return json_response({"Error Message": message})


def information_response(message: str) -> WireResponse:
    return json_response({"Information": message})


def render_daily_json(symbol: str, frame: pd.DataFrame, adjusted: bool, outputsize: str) -> WireResponse:
    """The JSON body of a daily series; ``frame`` is a canonical price frame, oldest first."""
    rows = newest_first_rows(frame)
    field_names = _ADJUSTED_FIELDS if adjusted else _DAILY_FIELDS
    series = {
        row[0].strftime("%Y-%m-%d"): dict(zip(field_names, wire_fields(row, adjusted), strict=True))
        for row in rows
    }
    meta = {
        "1. Information": _ADJUSTED_INFORMATION if adjusted else _DAILY_INFORMATION,
        "2. Symbol": symbol,
        "3. Last Refreshed": rows[0][0].strftime("%Y-%m-%d"),
        "4. Output Size": _OUTPUT_SIZE_NAMES[outputsize],
        "5. Time Zone": "US/Eastern",
    }
    return json_response({"Meta Data": meta, "Time Series (Daily)": series})


def render_daily_csv(frame: pd.DataFrame, adjusted: bool) -> WireResponse:
    """The CSV body of a daily series: header, then rows newest first, CRLF line ends."""
    return WireResponse(daily_csv(frame, adjusted), CSV_MEDIA_TYPE)


class ThrottleKind(StrEnum):
    """A throttling answer that can be forced for tests."""

    BURST = "burst"
    DAILY = "daily"


class AlphaVantageEmulator:
    """Answers ``/query`` requests from the sandbox's market (synthetic or recorded), enforcing the
    key model above."""

    def __init__(
        self,
        market: Market,
        clock: SandboxClock,
        config: SandboxConfig,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.market = market
        self.clock = clock
        self.config = config
        self.query_requests = 0
        self._monotonic = monotonic
        self._daily_usage: defaultdict[tuple[str, date], int] = defaultdict(int)
        self._last_accepted: dict[str, float] = {}
        self._forced: list[ThrottleKind] = []

    def force_throttle(self, kind: ThrottleKind | None, times: int = 1) -> None:
        """Answer the next ``times`` requests with a throttle body; ``kind=None`` clears it."""
        self._forced = [] if kind is None else [kind] * times

    def handle(self, params: Mapping[str, str]) -> WireResponse:
        self.query_requests += 1
        api_key = params.get("apikey", "")
        if not api_key:
            return error_response(MISSING_API_KEY_MESSAGE)
        if self._forced:
            return self._throttle_response(self._forced.pop(0), api_key)
        premium = api_key in self.config.premium_keys or api_key == DEMO_KEY
        if api_key == DEMO_KEY and params.get("symbol", "").upper() not in self.config.demo_symbols:
            return information_response(DEMO_KEY_MESSAGE)
        if not premium:
            limited = self._free_key_limit(api_key)
            if limited is not None:
                return limited
        return self._daily_series(params, premium)

    def _throttle_response(self, kind: ThrottleKind, api_key: str) -> WireResponse:
        if kind is ThrottleKind.BURST:
            return information_response(BURST_MESSAGE)
        return information_response(
            daily_quota_message(api_key, self.config.daily_limit or _FREE_DAILY_LIMIT)
        )

    def _free_key_limit(self, api_key: str) -> WireResponse | None:
        """The throttle answer for a free key over its limits, else record the request."""
        now = self._monotonic()
        burst = self.config.burst_per_second
        last = self._last_accepted.get(api_key)
        if burst is not None and last is not None and now - last < 1.0 / burst:
            return information_response(BURST_MESSAGE)
        usage_key = (api_key, self.clock.today())
        limit = self.config.daily_limit
        if limit and self._daily_usage[usage_key] >= limit:
            return information_response(daily_quota_message(api_key, limit))
        self._daily_usage[usage_key] += 1
        self._last_accepted[api_key] = now
        return None

    def _daily_series(self, params: Mapping[str, str], premium: bool) -> WireResponse:
        function = params.get("function", "")
        if function not in (DAILY, DAILY_ADJUSTED):
            return error_response(unknown_function_message(function))
        if function == DAILY_ADJUSTED and not premium:
            return information_response(PREMIUM_ENDPOINT_MESSAGE)
        outputsize = params.get("outputsize", "compact")
        datatype = params.get("datatype", "json")
        symbol = params.get("symbol", "")
        if outputsize not in _OUTPUT_SIZE_NAMES or datatype not in ("json", "csv"):
            return error_response(invalid_call_message(function))
        if outputsize == "full" and not premium:
            return information_response(premium_outputsize_message(function))
        if not self.market.is_listed(symbol):
            return error_response(invalid_call_message(function))
        frame = self.market.history(symbol, self.clock.today())
        if frame.empty:
            return error_response(invalid_call_message(function))
        if outputsize == "compact":
            frame = frame.tail(COMPACT_ROWS)
        adjusted = function == DAILY_ADJUSTED
        if datatype == "csv":
            return render_daily_csv(frame, adjusted)
        return render_daily_json(symbol, frame, adjusted, outputsize)
