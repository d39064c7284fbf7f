"""Whether a process (or a process group) still runs, for the commands that watch others."""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def alive(pid: int, *, group: bool = False) -> bool:
    """Whether process ``pid`` (or process group ``pid``, with ``group``) still runs: a zombie (an
    exited process its parent has not reaped yet, or one left to an init that never reaps) does
    not count; one owned by another user does."""
    if _PROC.is_dir():
        return bool(_running(pid, group))
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(pid: int, group: bool) -> list[int]:
    """From /proc: ``pid`` itself, or the members of process group ``pid``, that are not zombies."""
    candidates = [entry for entry in _PROC.iterdir() if entry.name.isdigit()] if group else [_PROC / str(pid)]
    found = []
    for entry in candidates:
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, process_group = fields[0], int(fields[2])
        if state not in ("Z", "X") and (not group or process_group == pid):
            found.append(int(entry.name))
    return found
