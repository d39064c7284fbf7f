"""Fail when a file holds something credential-shaped that is not in the audited baseline.

detect-secrets finds the candidates; this compares them with `.secrets.baseline` by file, type
and secret hash (not by line number, so unrelated edits do not invalidate the baseline). Usage:
`python .ci/secret_scan.py [FILE ...]` (default: every tracked file). To accept a reviewed false
positive, regenerate the baseline (see .ci/secret-scan.sh) and set "is_secret": false on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / ".secrets.baseline"


def _findings(report: dict) -> set[tuple[str, str, str]]:
    return {
        (name, item["type"], item["hashed_secret"])
        for name, items in report.get("results", {}).items()
        for item in items
    }


def _scan(files: list[str], cwd: Path) -> set[tuple[str, str, str]]:
    """detect-secrets only reads files below its working directory: run it where the files are."""
    scanner = Path(sys.executable).parent / "detect-secrets"
    command = [str(scanner), "scan", "--no-verify", *files]  # never a network call to check a find
    scan = subprocess.run(command, capture_output=True, text=True, check=True, cwd=cwd)
    return _findings(json.loads(scan.stdout))


def main(files: list[str]) -> int:
    if files:
        found: set[tuple[str, str, str]] = set()
        for name in files:
            path = Path(name).resolve()
            found |= {(name, kind, digest) for _, kind, digest in _scan([path.name], path.parent)}
    else:
        listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True, cwd=ROOT)
        files = [name for name in listed.stdout.split() if name != BASELINE.name and (ROOT / name).is_file()]
        found = _scan(files, ROOT)
    accepted = _findings(json.loads(BASELINE.read_text(encoding="utf-8")))
    new = sorted(found - accepted)
    for name, kind, _ in new:
        print(f"possible credential ({kind}) in {name}")
    if new:
        print(f"{len(new)} unaudited finding(s): secrets belong in the environment, never in files")
        return 1
    print(f"secret scan: {len(files)} file(s), no unaudited credentials")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
