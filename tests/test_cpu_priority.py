"""Monitoring computes at a lower CPU priority than the runs on the way to a session's orders, in a
thread of its own: the rest of the process keeps its priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from mlops_pipeline.cpu_priority import BACKGROUND_NICENESS, at_background_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux threads only")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_work_runs_niced_and_the_caller_keeps_its_priority() -> None:
    before = _niceness()
    inherited: list[int] = []

    def work() -> tuple[int, str]:
        child = threading.Thread(target=lambda: inherited.append(_niceness()))  # an async runner's
        child.start()
        child.join()
        return _niceness(), threading.current_thread().name

    niceness, thread = at_background_priority(work)
    assert niceness == min(before + BACKGROUND_NICENESS, 19)
    assert inherited == [niceness]
    assert thread != threading.current_thread().name
    assert _niceness() == before


def test_the_works_exception_reaches_the_caller() -> None:
    class ReportError(ValueError):
        pass

    def work() -> None:
        raise ReportError("no reference window")

    with pytest.raises(ReportError, match="no reference window"):
        at_background_priority(work)
