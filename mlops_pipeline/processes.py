"""Whether a process (or a process group) still exists, for the commands that watch others."""

from __future__ import annotations

import os


def alive(pid: int, *, group: bool = False) -> bool:
    """Whether process ``pid`` (or process group ``pid``, with ``group``) exists; one owned by
    another user counts as alive."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
