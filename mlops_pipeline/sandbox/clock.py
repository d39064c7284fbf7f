"""The sandbox's notion of "today": pinned by configuration, following the real New York date, or set for
one request by its session (``X-Sandbox-Session``, see :mod:`mlops_pipeline.sandbox.sessions`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime

from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE


def new_york_today() -> date:
    """The real current date in America/New_York."""
    return datetime.now(EXCHANGE_TIMEZONE).date()


class SandboxClock:
    """The current sandbox date; ``pinned=None`` follows the real date in America/New_York.

    Inside :meth:`session` (one request), :meth:`today` is that request's session instead; the
    override lives in a context variable, so concurrent requests never see each other's session.
    """

    def __init__(self, pinned: date | None = None) -> None:
        self.pinned = pinned
        self._session: ContextVar[date | None] = ContextVar(f"sandbox-session-{id(self)}", default=None)

    def today(self) -> date:
        """The current request's session, else the global sandbox date."""
        session = self._session.get()
        return session if session is not None else self.global_today()

    def global_today(self) -> date:
        """The sandbox date that requests without a session use (``PUT /_sandbox/clock``)."""
        if self.pinned is not None:
            return self.pinned
        return new_york_today()

    @contextmanager
    def session(self, day: date | None) -> Iterator[None]:
        """Make ``day`` today for the code inside (``None``: the global date, unchanged)."""
        if day is None:
            yield
            return
        token = self._session.set(day)
        try:
            yield
        finally:
            self._session.reset(token)
