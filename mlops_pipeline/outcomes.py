"""Outcomes a session's step shares across rooms: it did nothing, with the reason, or it refused.

A step's own module adds what it did (e.g. ``Trained``, ``Predicted``); an asset turns a
:class:`Skipped` into a log line (or an observation) and a :class:`Refused` into a failed step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Skipped:
    """Nothing to do yet, and why (e.g. no champion to ask, a history still too short)."""

    reason: str


@dataclass(frozen=True)
class Refused:
    """The inputs cannot give a result, and why; the step fails with this reason."""

    reason: str
