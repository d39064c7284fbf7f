"""What a finished Dagster run says about itself, in one line: why it failed, or why it waits."""

from __future__ import annotations

import re
from collections.abc import Iterable

import dagster as dg

from mlops_pipeline.assets.common import WAITING

_QUALIFIED_ERROR = re.compile(r"^(?:\w+\.)+\w+: ")  # "package.module.SomeError: " before a message


def failure_reason(events: Iterable[dg.DagsterEvent]) -> str:
    """The root cause of the first failed step, in one line (the full trace is in the run's logs);
    for a run failed from outside (its process gone), the reason it was failed with."""
    failed_from_outside = None
    for event in events:
        if event.event_type == dg.DagsterEventType.RUN_FAILURE and event.message:
            failed_from_outside = event.message.strip().splitlines()[0][:300]
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        if error is not None:
            while error.cause is not None:
                error = error.cause
            message = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
            return _QUALIFIED_ERROR.sub("", message)[:300]
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation is not None and not evaluation.passed and evaluation.blocking:
                return f"blocking check {evaluation.check_name!r} failed"
    return failed_from_outside or "failed (see the run's logs in the UI)"


def waiting_note(events: Iterable[dg.DagsterEvent]) -> str | None:
    """Why a successful run materialized nothing and waits (an observation's ``waiting`` metadata)."""
    for event in events:
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            observation = event.event_specific_data.asset_observation  # type: ignore[union-attr]
            waiting = observation.metadata.get(WAITING)
            if waiting is not None:
                return str(waiting.value)[:300]
    return None


def run_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    """The Dagster events a run stored."""
    return [record.dagster_event for record in instance.all_logs(run_id) if record.dagster_event is not None]
