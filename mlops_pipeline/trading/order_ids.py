"""Deterministic order identity: a rerun of the same day produces the same client order ids."""

from __future__ import annotations

import hashlib
from datetime import date

from mlops_pipeline.config.teams import StrategySpec


def strategy_version(spec: StrategySpec) -> str:
    """A short hash of the strategy's name and parameters: changing either is a new version."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:8]


def client_order_id(team: str, trading_date: date, ticker: str, side: str, version: str) -> str:
    """``<team>-<YYYYMMDD>-<TICKER>-<side>-<version>``: unique per account for one day's intent
    (well under Alpaca's 128-character limit)."""
    return f"{team}-{trading_date:%Y%m%d}-{ticker}-{side}-{version}"


def trading_date_of(order_id: str, team: str) -> date | None:
    """The trading date inside one of ``team``'s client order ids, or ``None`` for other ids."""
    prefix, _, rest = order_id.partition("-")
    stamp = rest.split("-", 1)[0]
    if prefix != team or len(stamp) != 8 or not stamp.isdigit():
        return None
    return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
