"""Risk limits that act on a whole day's orders, and the kill switch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from mlops_pipeline.config.teams import RiskLimits
from mlops_pipeline.trading.model import OrderIntent, SkippedIntent

_TRUTHY = {"1", "true", "yes", "on"}


def kill_switch_reason(
    limits: RiskLimits,
    environ: Mapping[str, str],
    file_exists: Callable[[str], bool] = lambda path: Path(path).exists(),
) -> str | None:
    """Why all new orders are blocked: the env var is set to a true value or the flag file exists."""
    if environ.get(limits.kill_switch_env, "").strip().lower() in _TRUTHY:
        return f"kill switch: {limits.kill_switch_env} is set"
    if limits.kill_switch_file and file_exists(limits.kill_switch_file):
        return f"kill switch: {limits.kill_switch_file} exists"
    return None


def apply_day_limits(
    intents: list[OrderIntent], limits: RiskLimits
) -> tuple[list[OrderIntent], list[SkippedIntent]]:
    """Keep intents in order while they fit ``max_orders_per_day`` and ``max_notional_per_day``.

    A buy that does not fit the remaining notional is reduced to the whole shares that do; a sell
    that does not fit is skipped (never partially closed by a limit).
    """
    kept: list[OrderIntent] = []
    skipped: list[SkippedIntent] = []
    notional_left = limits.max_notional_per_day
    for planned in intents:
        intent = planned
        if len(kept) >= limits.max_orders_per_day:
            skipped.append(
                SkippedIntent(intent.ticker, f"max_orders_per_day ({limits.max_orders_per_day}) reached")
            )
            continue
        if intent.notional > notional_left:
            qty = math.floor(notional_left / intent.price) if intent.side == "buy" else 0
            if qty < 1:
                skipped.append(
                    SkippedIntent(
                        intent.ticker,
                        f"max_notional_per_day ({limits.max_notional_per_day:.0f}) reached: "
                        f"{intent.side} {intent.notional:.2f} > {notional_left:.2f} left",
                    )
                )
                continue
            intent = replace(intent, qty=float(qty), reason=f"{intent.reason}; cut to max_notional_per_day")
        notional_left -= intent.notional
        kept.append(intent)
    return kept, skipped
