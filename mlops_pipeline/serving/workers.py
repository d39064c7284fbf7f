"""The worker processes of one server: a shared folder through which they agree on readiness and metrics.

Each worker loads the models itself. It writes ``state-<pid>.json`` once its models have loaded or
failed, and ``metrics-<pid>.json`` (its counters) every ``METRICS_PUBLISH_S`` seconds and when it
stops. The server is ready once ``size`` workers have loaded and none has failed; ``/metrics`` adds
up every worker's counters (another worker's are at most ``METRICS_PUBLISH_S`` old).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS_PUBLISH_S = 0.5


@dataclass(frozen=True)
class GroupStatus:
    state: str  # "loading", "ready" or "failed"
    reason: str | None


class WorkerGroup:
    def __init__(self, directory: Path, size: int) -> None:
        self.directory = directory
        self.size = size
        self._ready = False  # once every worker has loaded, the group stays ready

    def _write(self, kind: str, content: Any) -> None:
        """Replace this process's ``<kind>-<pid>.json`` whole, so that readers never see half of it."""
        handle, staging = tempfile.mkstemp(dir=self.directory, prefix=f".{kind}-")
        with open(handle, "w", encoding="utf-8") as out:
            json.dump(content, out)
        Path(staging).replace(self.directory / f"{kind}-{os.getpid()}.json")

    def _read_all(self, kind: str) -> dict[int, Any]:
        contents = {}
        for path in self.directory.glob(f"{kind}-*.json"):
            try:
                contents[int(path.stem.split("-")[1])] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # removed meanwhile: its server is shutting down
        return contents

    def mark_loaded(self, state: str, reason: str | None) -> None:
        self._write("state", {"state": state, "reason": reason})

    def status(self) -> GroupStatus:
        if self._ready:
            return GroupStatus("ready", None)
        states = self._read_all("state").values()
        failures = [state["reason"] for state in states if state["state"] == "failed"]
        if failures:
            return GroupStatus("failed", failures[0])
        loaded = sum(state["state"] == "ready" for state in states)
        if loaded < self.size:
            return GroupStatus("loading", f"{loaded} of {self.size} workers have loaded the models")
        self._ready = True
        return GroupStatus("ready", None)

    def publish_metrics(self, snapshot: dict[str, Any]) -> None:
        self._write("metrics", snapshot)

    def other_metrics(self) -> list[dict[str, Any]]:
        """The counters the other workers last published."""
        own = os.getpid()
        return [snapshot for pid, snapshot in self._read_all("metrics").items() if pid != own]
