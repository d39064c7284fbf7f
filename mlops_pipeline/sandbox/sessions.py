"""Per-request sessions: the ``X-Sandbox-Session`` header (and ``sandbox_session`` on ``/query``).

``X-Sandbox-Session: 2024-06-13`` makes that NYSE session "today" for one request, after its
close, without touching the global clock (``PUT /_sandbox/clock``) or other requests: requests for
different sessions can be served side by side. AlphaVantage clients that cannot set headers may
pass ``sandbox_session=2024-06-13`` on ``GET /query`` instead (when both are given they must agree).
Without either, a request uses the global clock exactly as before.

A session must be an NYSE session (``YYYY-MM-DD``, no weekends or holidays), on or after the
synthetic market's start and not after the sandbox's configured ``today`` (``SandboxConfig.today``,
``--today``; the real New York date when unset), which stays the upper bound even when the global
clock is moved past it. Anything else is refused, never served: ``GET /query`` answers HTTP 400
``{"Error Message": ...}``, ``/v2`` answers 422 ``{"code": 40010001, "message": ...}``.

Paper accounts only move forward: on the Alpaca account routes, a session that the account has
already settled past answers 409 (see :mod:`mlops_pipeline.sandbox.alpaca_broker`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from mlops_pipeline.market.calendar import holiday_name, is_trading_day, next_trading_day
from mlops_pipeline.sandbox.clock import new_york_today
from mlops_pipeline.sandbox.config import SandboxConfig

SESSION_HEADER = "X-Sandbox-Session"
SESSION_QUERY_PARAMETER = "sandbox_session"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class SessionRefusedError(ValueError):
    """A requested session the sandbox does not serve; the message says why."""


@dataclass(frozen=True)
class SessionPolicy:
    """Which sessions requests may ask for: NYSE sessions from ``first`` to ``last`` (inclusive;
    ``last=None``: the real New York date)."""

    first: date
    last: date | None = None

    @classmethod
    def from_config(cls, config: SandboxConfig) -> SessionPolicy:
        return cls(first=config.market_start, last=config.today)

    def latest(self) -> date:
        return self.last if self.last is not None else new_york_today()

    def parse(self, raw: str | None) -> date | None:
        """The session named by ``raw`` (``None``: no session asked for); :class:`SessionRefusedError`
        when it is malformed, in the future of the sandbox, before its market or not a session."""
        if raw is None:
            return None
        text = raw.strip()
        try:
            if _ISO_DATE.fullmatch(text) is None:
                raise ValueError(text)
            day = date.fromisoformat(text)
        except ValueError:
            raise SessionRefusedError(f"{SESSION_HEADER} must be a date YYYY-MM-DD, got {raw!r}") from None
        latest = self.latest()
        if day > latest:
            raise SessionRefusedError(
                f"sandbox session {day} is after the sandbox's today ({latest}); "
                "future sessions are not served"
            )
        if day < self.first:
            raise SessionRefusedError(
                f"sandbox session {day} is before the sandbox market starts ({self.first})"
            )
        if not is_trading_day(day):
            reason = holiday_name(day) or "a weekend"
            raise SessionRefusedError(
                f"sandbox session {day} is not an NYSE session ({reason}); "
                f"the next session is {next_trading_day(day)}"
            )
        return day

    def from_request(
        self, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> date | None:
        """The session of a request: its header, else (when ``params`` is given) its query parameter."""
        header = headers.get(SESSION_HEADER)
        parameter = None if params is None else params.get(SESSION_QUERY_PARAMETER)
        if header is not None and parameter is not None and header.strip() != parameter.strip():
            raise SessionRefusedError(
                f"{SESSION_HEADER} ({header}) and {SESSION_QUERY_PARAMETER} ({parameter}) disagree"
            )
        return self.parse(header if header is not None else parameter)
