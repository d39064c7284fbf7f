"""Retraining requests from monitoring results, with a cooldown against retraining storms.

A report recommends retraining when its drift or performance check failed. A request is only
made when the team opted in (``retrain.on_drift``) and the ticker's last request was made for a
trading date at least ``cooldown_days`` calendar days before the report's date. The sensor keeps
that memory in its cursor (:class:`RetrainCursor`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date


@dataclass
class RetrainCursor:
    """The last processed event and, per ticker, the as-of date of the last retraining request."""

    after_storage_id: int | None = None
    last_requested: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> RetrainCursor:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(data.get("after_storage_id"), dict(data.get("last_requested", {})))

    def dumps(self) -> str:
        return json.dumps(
            {"after_storage_id": self.after_storage_id, "last_requested": self.last_requested}, sort_keys=True
        )


def cooldown_allows(last_requested: date | None, as_of: date, cooldown_days: int) -> bool:
    """Whether a report for ``as_of`` may request retraining after a request made for ``last_requested``."""
    return last_requested is None or (as_of - last_requested).days >= cooldown_days


def recommendation_text(recommended: bool, on_drift: bool, reasons: list[str]) -> str:
    """What the UI shows, whatever the team's policy."""
    if not recommended:
        return "not recommended: drift and performance checks passed or were not evaluated"
    why = "; ".join(reasons)
    if on_drift:
        return (
            f"recommended ({why}); requested automatically (retrain.on_drift: true, subject to the cooldown)"
        )
    return f"recommended ({why}); manual decision (retrain.on_drift: false)"


def retrain_run_key(team: str, ticker: str, as_of: date) -> str:
    return f"retrain-{team}-{ticker}-{as_of.isoformat()}"
