"""Work that must not hold up a session's trading computes at a lower CPU priority.

A session's monitoring reports (evidently, a few seconds of CPU for each ticker) run beside the
runs on the session's way to its orders, backtest and leaderboard; on a busy machine those waited
for the cores. Measured in a 6-session replay on 2 cores: an orders run started 0.8-0.9 s after it
was created while the reports computed at the same priority, 0.5 s after with the reports at nice
+10; steady sessions took 8.8-9.7 s instead of 9.2-10.4 s.

Linux gives each thread its own nice value, so the work runs in a thread of its own, niced, while
the caller waits: the rest of the process (``mlops run`` executes every stage in one process)
keeps its priority. Elsewhere the work runs as is.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BACKGROUND_NICENESS = 10


def at_background_priority(work: Callable[[], T]) -> T:
    """``work()``, computed in a thread niced by ``BACKGROUND_NICENESS``; its result, or its
    exception raised here. Threads it starts (evidently's async runner) inherit the niceness."""
    if not sys.platform.startswith("linux"):
        return work()
    outcome: dict[str, T] = {}
    failure: list[BaseException] = []

    def niced() -> None:
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):  # a priority that cannot be changed: the caller's
            niceness = os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS
            os.setpriority(os.PRIO_PROCESS, thread, niceness)
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed to the caller as it is
            failure.append(exc)

    worker = threading.Thread(target=niced, name="background-priority", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome["result"]
