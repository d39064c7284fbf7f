"""Each session x ticker definition's partition keys listed once per backfill iteration.

Dagster checks, at every iteration of a backfill, that every partition the backfill targets still
exists: for each targeted asset it lists all of its definition's keys (``subset_with_all_partitions``
in ``dagster/_core/execution/asset_backfill.py``). A session x ticker definition lists every
session since ``MLOPS_SESSIONS_START`` times every ticker, and Dagster keeps only the last listing
(``lru_cache(maxsize=1)`` on ``MultiPartitionsDefinition._get_partition_keys``). The teams' assets
have one definition per team (its tickers) and the market's another, and the targeted assets come
in hash order, so nearly every asset lists its definition again: with two teams, 0.45 s of CPU an
iteration, and a replay iterates each session's backfill 4 to 10 times.

:func:`partition_keys_listed_once` keeps every listing made inside it instead, per definition and
effective time (an iteration lists at its backfill's creation time), as Dagster's own cache is
keyed; Dagster's own listing is back in place on exit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import dagster as dg

_METHOD = "_get_partition_keys"
Keys = Sequence[dg.MultiPartitionKey]


@contextmanager
def partition_keys_listed_once() -> Iterator[None]:
    """Within the block, each session x ticker definition lists its keys once per effective time.

    Where Dagster's class has no such method (a later release renamed it), the block changes nothing."""
    listing = dg.MultiPartitionsDefinition.__dict__.get(_METHOD)
    if listing is None:
        yield
        return
    listed: dict[tuple[dg.MultiPartitionsDefinition, datetime], Keys] = {}

    def list_once(self: dg.MultiPartitionsDefinition, _current_time: datetime) -> Keys:
        key = (self, _current_time)
        if key not in listed:
            listed[key] = listing(self, _current_time)
        return listed[key]

    try:
        setattr(dg.MultiPartitionsDefinition, _METHOD, list_once)
        yield
    finally:
        setattr(dg.MultiPartitionsDefinition, _METHOD, listing)
