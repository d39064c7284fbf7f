"""The repository credential scan passes on the tree and fails on a planted credential."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / ".ci" / "secret_scan.py"


def _scan(*files: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), *files]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT)


@pytest.mark.integration  # scans every tracked file
def test_tracked_files_have_no_unaudited_credentials() -> None:
    result = _scan()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no unaudited credentials" in result.stdout


def test_a_planted_credential_fails_the_scan(tmp_path: Path) -> None:
    leak = tmp_path / "settings.py"
    # Assembled at run time so that this file itself holds no credential-shaped literal.
    access_key = "AKIA" + "Z3MSJV4WXQ7TRBLN"
    leak.write_text(f'aws_access_key_id = "{access_key}"\n', encoding="utf-8")
    result = _scan(str(leak))
    assert result.returncode == 1
    assert f"possible credential (AWS Access Key) in {leak}" in result.stdout
