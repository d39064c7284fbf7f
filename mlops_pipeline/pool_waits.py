"""A step waiting for a pool slot sleeps until its next claim instead of spinning a core.

Dagster's executor loop asks ``InstanceConcurrencyContext.interval_to_next_pending_claim_check``
how long to sleep before a blocked step tries its pool again. The installed Dagster answers
``min([0, *time_left])``, which is never positive, so the run's process busy-loops at a full core
for as long as its step waits (measured on the embedded storage: a run that waited about 3.5 s
for a pool held by another run used 4.8 s of CPU, 1.15 s with this correction). A session's
ticker runs share the AlphaVantage pool: on a 2-core machine the waiting runs took the cores from
the one computing. Here the answer is the time left until the earliest pending claim is due (zero
when one is due now), which is what the executor then sleeps.

:func:`sleep_between_pool_checks` installs that answer in this process; every run process passes
through it when it loads the code location (:func:`mlops_pipeline.defs_builder.build_definitions`),
whichever launcher started it.
"""

from __future__ import annotations

import time

from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext


def _time_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    return max(0.0, min(self._pending_timeouts.values()) - time.time())


def sleep_between_pool_checks() -> None:
    """Make a blocked step's run sleep until its next pool claim is due (idempotent)."""
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = _time_to_next_pending_claim_check
