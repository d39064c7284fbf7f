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


def main(files: list[str]) -> int:
    if not files:
        listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True, cwd=ROOT)
        files = [name for name in listed.stdout.split() if name != BASELINE.name and (ROOT / name).is_file()]
    scanner = Path(sys.executable).parent / "detect-secrets"
    scan = subprocess.run(
        [str(scanner), "scan", *files], capture_output=True, text=True, check=True, cwd=ROOT
    )
    accepted = _findings(json.loads(BASELINE.read_text(encoding="utf-8")))
    new = sorted(_findings(json.loads(scan.stdout)) - accepted)
    for name, kind, _ in new:
        print(f"possible credential ({kind}) in {name}")
    if new:
        print(f"{len(new)} unaudited finding(s): secrets belong in the environment, never in files")
        return 1
    print(f"secret scan: {len(files)} file(s), no unaudited credentials")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
