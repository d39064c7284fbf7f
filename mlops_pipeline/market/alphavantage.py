"""AlphaVantage daily time-series client returning the canonical price frame.

AlphaVantage answers everything with HTTP 200; errors, throttling and premium gates are one-key
JSON bodies (``Error Message``, ``Information``, legacy ``Note``), also for CSV requests. They are
mapped to typed errors:

* :class:`InvalidApiKeyError`: missing, invalid or demo key (not retried);
* :class:`InvalidSymbolError`: unknown symbol or rejected parameters (not retried);
* :class:`RateLimitedError`: per-second/per-minute throttling, retried with exponential backoff;
* :class:`DailyQuotaExceededError`: the key's daily quota is used up (not retried);
* :class:`PremiumRequiredError`: premium endpoint or parameter, raised before any request when the
  client is not premium;
* :class:`AlphaVantageParseError`: malformed, truncated or non-numeric data (never partial data);
* :class:`AlphaVantageUnavailableError`: HTTP 5xx or transport failures after the retries.

The API key never appears in error messages or in ``httpx``'s request log.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

import httpx
import pandas as pd

from mlops_pipeline import http_clients
from mlops_pipeline.market.budget import RequestBudget
from mlops_pipeline.market.schema import conform_price_frame

DEFAULT_BASE_URL = "https://www.alphavantage.co"
DAILY = "TIME_SERIES_DAILY"
DAILY_ADJUSTED = "TIME_SERIES_DAILY_ADJUSTED"
DEMO_KEY = "demo"
_CONNECT_TIMEOUT_S = 10.0
_REDACTED = "***"
_SNIPPET_CHARS = 60

OutputSize = Literal["compact", "full"]
DataType = Literal["json", "csv"]

logger = logging.getLogger(__name__)

# Wire field -> canonical column, per function.
_JSON_FIELDS = {
    DAILY: {
        "1. open": "open",
        "2. high": "high",
        "3. low": "low",
        "4. close": "close",
        "5. volume": "volume",
    },
    DAILY_ADJUSTED: {
        "1. open": "open",
        "2. high": "high",
        "3. low": "low",
        "4. close": "close",
        "5. adjusted close": "adjusted_close",
        "6. volume": "volume",
        "7. dividend amount": "dividend_amount",
        "8. split coefficient": "split_coefficient",
    },
}
_CSV_COLUMNS = {
    DAILY: ("timestamp", "open", "high", "low", "close", "volume"),
    DAILY_ADJUSTED: (
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "adjusted_close",
        "volume",
        "dividend_amount",
        "split_coefficient",
    ),
}
_SERIES_KEY = "Time Series (Daily)"
_META_KEY = "Meta Data"
_MESSAGE_KEYS = ("Error Message", "Information", "Note")

_APIKEY_QUERY_VALUE = re.compile(r"(apikey=)[^&\s\"]+", re.IGNORECASE)


def _redact_api_key_in_httpx_log(record: logging.LogRecord) -> bool:
    """Mask ``apikey=...`` in httpx's "HTTP Request: GET <url>" records."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            _APIKEY_QUERY_VALUE.sub(rf"\g<1>{_REDACTED}", str(arg))
            if isinstance(arg, httpx.URL | str)
            else arg
            for arg in record.args
        )
    return True


logging.getLogger("httpx").addFilter(_redact_api_key_in_httpx_log)


class AlphaVantageError(Exception):
    """An AlphaVantage failure; ``message`` is the service's (redacted) message or our diagnosis.

    ``str()`` prefixes it with the request it concerns, e.g. "TIME_SERIES_DAILY AAPL: ...".
    """

    def __init__(self, message: str, context: str = "") -> None:
        super().__init__(f"{context}: {message}" if context else message)
        self.message = message


class InvalidSymbolError(AlphaVantageError):
    """Unknown symbol or rejected request parameters."""


class RateLimitedError(AlphaVantageError):
    """Requests were too frequent (burst / per-minute limit)."""


class DailyQuotaExceededError(AlphaVantageError):
    """The key's daily request quota is used up."""


class PremiumRequiredError(AlphaVantageError):
    """The endpoint or parameter needs a premium subscription."""


class InvalidApiKeyError(AlphaVantageError):
    """The API key is missing, invalid, or the demo key."""


class AlphaVantageParseError(AlphaVantageError):
    """The response is not a well-formed daily series."""


class AlphaVantageUnavailableError(AlphaVantageError):
    """The service could not be reached or answered with a server error, after retries."""


@dataclass(frozen=True)
class DailySeries:
    """A parsed daily series.

    ``frame`` is the canonical price frame, oldest first. When ``adjusted`` is False the response
    had no adjustment data: ``adjusted_close`` equals ``close``, ``dividend_amount`` is 0 and
    ``split_coefficient`` is 1. ``meta`` is the response's ``Meta Data`` (empty for CSV);
    ``requests_used`` counts the HTTP requests made, retries included.
    """

    symbol: str
    frame: pd.DataFrame
    adjusted: bool
    output_size: OutputSize
    last_refreshed: date
    requests_used: int
    meta: Mapping[str, str] = field(default_factory=dict)


def classify_message(key: str, message: str, context: str = "") -> AlphaVantageError:
    """The typed error for an AlphaVantage ``Error Message`` / ``Information`` / ``Note`` body."""
    text = message.lower()
    error_type = AlphaVantageError
    if key == "Error Message":
        if "apikey" in text:
            error_type = InvalidApiKeyError
        elif "does not exist" not in text:
            error_type = InvalidSymbolError
    elif "demo" in text:
        error_type = InvalidApiKeyError
    elif "spreading out" in text or "per second" in text or "per minute" in text:
        error_type = RateLimitedError
    elif "per day" in text:
        error_type = DailyQuotaExceededError
    elif "premium" in text:
        error_type = PremiumRequiredError
    return error_type(message, context)


class AlphaVantageClient:
    """Fetches daily series over HTTP, with bounded retries and an optional shared request budget."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        premium: bool = False,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        budget: RequestBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.premium = premium
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.budget = budget
        self._api_key = api_key
        self._sleep = sleep
        self._http = http_clients.client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, _CONNECT_TIMEOUT_S)),
            transport=transport,
            headers=headers,
        )
        secret = api_key and api_key != DEMO_KEY
        self._key_pattern = re.compile(rf"(?<![\w-]){re.escape(api_key)}(?![\w-])") if secret else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AlphaVantageClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def daily(
        self,
        symbol: str,
        outputsize: OutputSize = "compact",
        adjusted: bool = False,
        datatype: DataType = "json",
    ) -> DailySeries:
        """The daily series of ``symbol``: the latest 100 sessions (``compact``) or all (``full``)."""
        function = DAILY_ADJUSTED if adjusted else DAILY
        context = f"{function} {symbol}"
        if not self.premium and (adjusted or outputsize == "full"):
            wanted = DAILY_ADJUSTED if adjusted else f"outputsize=full of {DAILY}"
            raise PremiumRequiredError(
                f"{wanted} needs a premium AlphaVantage key; create the client with premium=True", context
            )
        params = {"function": function, "symbol": symbol, "outputsize": outputsize, "datatype": datatype}
        try:
            payload, requests_used = self._fetch(params, context)
        except DailyQuotaExceededError:
            if self.budget is not None:
                self.budget.mark_exhausted()
            raise
        if datatype == "csv":
            frame, meta = parse_daily_csv(payload, function, context), {}
        else:
            frame, meta = _parse_json(payload, function, context, self._redact)
        return DailySeries(
            symbol=symbol,
            frame=frame,
            adjusted=adjusted,
            output_size=outputsize,
            last_refreshed=frame["date"].iloc[-1].date(),
            requests_used=requests_used,
            meta=meta,
        )

    def _fetch(self, params: dict[str, str], context: str) -> tuple[object, int]:
        """The first answer that is not a transient failure, and the number of requests made."""
        attempts = self.max_retries + 1
        attempt = 1
        while True:
            if self.budget is not None:
                self.budget.acquire()
            logger.debug("AlphaVantage request %s (attempt %d/%d)", context, attempt, attempts)
            try:
                return self._request(params, context), attempt
            except (RateLimitedError, AlphaVantageUnavailableError) as error:
                if attempt == attempts:
                    raise type(error)(
                        f"gave up after {attempts} attempts: {error.message}", context
                    ) from error
                delay = self.backoff_s * 2 ** (attempt - 1)
                logger.warning("AlphaVantage %s: %s; retrying in %.1f s", context, error.message, delay)
                self._sleep(delay)
                attempt += 1

    def _request(self, params: dict[str, str], context: str) -> object:
        """One request: the decoded JSON body, or the text when it is not JSON.

        Raises the typed error of an AlphaVantage message body or of an HTTP failure.
        """
        try:
            response = self._http.get("/query", params={**params, "apikey": self._api_key})
        except httpx.TransportError as error:
            message = self._redact(f"{type(error).__name__}: {error}")
            raise AlphaVantageUnavailableError(message, context) from None
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
            raise RateLimitedError(f"HTTP {response.status_code}", context)
        if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise AlphaVantageUnavailableError(f"HTTP {response.status_code}", context)
        if response.status_code != httpx.codes.OK:
            raise AlphaVantageError(
                f"unexpected HTTP status {response.status_code}: {self._redact(_snippet(response.text))}",
                context,
            )
        text = response.text
        if not text.lstrip().startswith("{"):
            return text
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(payload, dict):
            for key in _MESSAGE_KEYS:
                if isinstance(payload.get(key), str):
                    raise classify_message(key, self._redact(payload[key]), context)
        return payload

    def _redact(self, text: str) -> str:
        return self._key_pattern.sub(_REDACTED, text) if self._key_pattern else text


def _snippet(body: str) -> str:
    return repr(body.strip()[:_SNIPPET_CHARS])


def _number(raw: object, field_name: str, where: str, context: str, integer: bool = False) -> float:
    """``raw`` as a finite number (integral when ``integer``), else a parse error naming the field."""
    value = math.nan
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
    if not math.isfinite(value) or (integer and not value.is_integer()):
        raise AlphaVantageParseError(f"{field_name} on {where} is not a valid number: {raw!r}", context)
    return value


def _session_date(raw: str, context: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(datetime.fromisoformat(raw).date())
    except ValueError:
        raise AlphaVantageParseError(f"{raw!r} is not a date", context) from None


def _frame(records: list[dict[str, object]], context: str) -> pd.DataFrame:
    if not records:
        raise AlphaVantageParseError("the response contains no daily rows", context)
    frame = pd.DataFrame.from_records(records)
    if frame["date"].duplicated().any():
        duplicate = frame.loc[frame["date"].duplicated(), "date"].iloc[0].date()
        raise AlphaVantageParseError(f"{duplicate} appears more than once", context)
    if "adjusted_close" not in frame.columns:
        frame = frame.assign(adjusted_close=frame["close"], dividend_amount=0.0, split_coefficient=1.0)
    return conform_price_frame(frame)


def _parse_json(
    payload: object, function: str, context: str, redact: Callable[[str], str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    if isinstance(payload, str):
        try:
            json.loads(payload)
        except json.JSONDecodeError as error:
            raise AlphaVantageParseError(
                f"the response is not valid JSON ({error.msg} at character {error.pos}); "
                f"it starts with {redact(_snippet(payload))}",
                context,
            ) from None
    if not isinstance(payload, dict):
        raise AlphaVantageParseError("the response is not a JSON object", context)
    meta, series = payload.get(_META_KEY), payload.get(_SERIES_KEY)
    for key, value in ((_META_KEY, meta), (_SERIES_KEY, series)):
        if not isinstance(value, dict):
            raise AlphaVantageParseError(f"the response has no {key!r} object", context)
    fields = _JSON_FIELDS[function]
    records: list[dict[str, object]] = []
    for day, values in series.items():
        if not isinstance(values, dict):
            raise AlphaVantageParseError(f"the entry for {day} is not an object", context)
        missing = [name for name in fields if name not in values]
        if missing:
            raise AlphaVantageParseError(f"{day} lacks the field(s) {', '.join(missing)}", context)
        record: dict[str, object] = {"date": _session_date(day, context)}
        for wire_name, column in fields.items():
            record[column] = _number(values[wire_name], wire_name, day, context, integer=column == "volume")
        records.append(record)
    return _frame(records, context), {str(key): str(value) for key, value in meta.items()}


def parse_daily_csv(text: object, function: str, context: str) -> pd.DataFrame:
    """The canonical price frame of a daily-series CSV body (``datatype=csv``), oldest first.

    ``function`` is :data:`DAILY` or :data:`DAILY_ADJUSTED` and fixes the expected header; rows may
    come in any order (AlphaVantage sends them newest first) with CRLF or LF line ends. A malformed
    body raises :class:`AlphaVantageParseError` prefixed with ``context`` and naming the line (counted
    from 1, the header included) and the field; nothing is returned partially.
    """
    if not isinstance(text, str):
        raise AlphaVantageParseError("expected CSV, got a JSON body without a message", context)
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    columns = _CSV_COLUMNS[function]
    expected_header = ",".join(columns)
    if not lines or lines[0][1] != expected_header:
        where, header = (lines[0][0], _snippet(lines[0][1])) if lines else (1, "''")
        raise AlphaVantageParseError(
            f"unexpected CSV header {header} on line {where}, expected {expected_header!r}", context
        )
    records: list[dict[str, object]] = []
    first_line_of: dict[pd.Timestamp, int] = {}
    for line_number, line in lines[1:]:
        cells = line.split(",")
        if len(cells) != len(columns):
            raise AlphaVantageParseError(
                f"CSV line {line_number} has {len(cells)} fields, expected {len(columns)}", context
            )
        try:
            day = _session_date(cells[0], context)
        except AlphaVantageParseError as error:
            raise AlphaVantageParseError(
                f"CSV line {line_number}: timestamp {error.message}", context
            ) from None
        if day in first_line_of:
            raise AlphaVantageParseError(
                f"CSV line {line_number}: {day.date()} appears more than once "
                f"(first on line {first_line_of[day]})",
                context,
            )
        first_line_of[day] = line_number
        record: dict[str, object] = {"date": day}
        try:
            for column, cell in zip(columns[1:], cells[1:], strict=True):
                record[column] = _number(cell, column, cells[0], context, integer=column == "volume")
        except AlphaVantageParseError as error:
            raise AlphaVantageParseError(f"CSV line {line_number}: {error.message}", context) from None
        records.append(record)
    return _frame(records, context)


def _wire_price(value: float) -> str:
    return f"{value:.4f}"


def _wire_split(value: float) -> str:
    return str(round(float(value), 4))


def wire_fields(row: tuple, adjusted: bool) -> list[str]:
    """The wire values of one canonical price row (a tuple in ``PRICE_COLUMNS`` order), without its date."""
    _, open_, high, low, close, adjusted_close, volume, dividend, split = row
    if adjusted:
        return [
            _wire_price(open_),
            _wire_price(high),
            _wire_price(low),
            _wire_price(close),
            _wire_price(adjusted_close),
            str(int(volume)),
            _wire_price(dividend),
            _wire_split(split),
        ]
    return [_wire_price(open_), _wire_price(high), _wire_price(low), _wire_price(close), str(int(volume))]


def newest_first_rows(frame: pd.DataFrame) -> list[tuple]:
    """The rows of a canonical price frame (oldest first) as tuples, newest first."""
    return list(frame.iloc[::-1].itertuples(index=False, name=None))


def daily_csv(frame: pd.DataFrame, adjusted: bool) -> str:
    """A canonical price frame as AlphaVantage's daily CSV (``datatype=csv``): the header of
    :data:`DAILY_ADJUSTED` or :data:`DAILY`, then the rows newest first, CRLF line ends."""
    lines = [",".join(_CSV_COLUMNS[DAILY_ADJUSTED if adjusted else DAILY])]
    for row in newest_first_rows(frame):
        lines.append(",".join([row[0].strftime("%Y-%m-%d"), *wire_fields(row, adjusted)]))
    return "\r\n".join(lines) + "\r\n"
