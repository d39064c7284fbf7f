"""Whether the platform's code imported in a process is still what is on disk.

The fork server of :class:`~mlops_pipeline.run_launcher.PreforkRunLauncher` imports the platform
once, and each run forked from it keeps those modules unless a source file changed since: then the
run forgets them and imports the code as it is now, so that code edited (and reloaded in the UI)
is what the next run executes. Importing the platform anew took about 0.12-0.16 s of every run's
start (measured with its bytecode compiled again, as where ``PYTHONDONTWRITEBYTECODE`` is set).
"""

from __future__ import annotations

import sys
from pathlib import Path

SourceStamp = frozenset[tuple[str, int, int]]


def source_stamp(package_dir: Path) -> SourceStamp:
    """Every Python source file under ``package_dir`` with its modification time and size."""
    stamp = set()
    for path in package_dir.rglob("*.py"):
        info = path.stat()
        stamp.add((str(path), info.st_mtime_ns, info.st_size))
    return frozenset(stamp)


def forget_if_edited(package: str, package_dir: Path, imported: SourceStamp, keep: frozenset[str]) -> bool:
    """Forget the modules of ``package`` (but the package itself and ``keep``) when its sources
    differ from ``imported``, the stamp taken before they were imported; whether it did."""
    if source_stamp(package_dir) == imported:
        return False
    prefix = f"{package}."
    for name in [name for name in sys.modules if name.startswith(prefix) and name not in keep]:
        del sys.modules[name]
    return True
