"""The sandbox's notion of "today", pinned for replays or following the real New York date."""

from __future__ import annotations

from datetime import date, datetime

from mlops_pipeline.market.calendar import EXCHANGE_TIMEZONE


class SandboxClock:
    """The current sandbox date; ``pinned=None`` follows the real date in America/New_York."""

    def __init__(self, pinned: date | None = None) -> None:
        self.pinned = pinned

    def today(self) -> date:
        if self.pinned is not None:
            return self.pinned
        return datetime.now(EXCHANGE_TIMEZONE).date()
