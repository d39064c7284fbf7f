"""The repository credential scan passes on the tree and fails on a planted credential."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOK = str(Path(sys.executable).parent / "detect-secrets-hook")


def _scan(*files: Path) -> subprocess.CompletedProcess:
    command = [HOOK, "--baseline", str(REPO_ROOT / ".secrets.baseline"), *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)


def test_tracked_files_have_no_unaudited_credentials() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--", ":!.secrets.baseline"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout.split()
    result = _scan(*(Path(name) for name in tracked if (REPO_ROOT / name).is_file()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_planted_credential_fails_the_scan(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    leak = planted / "settings.py"
    # Assembled at run time so that this file itself holds no credential-shaped literal.
    access_key = "AKIA" + "Z3MSJV4WXEXAMPLQ"
    secret = "q8Vt2LmN4pR7sX1z" + "K9wB3yC6dF0gH5jTuE2aW8oI"
    leak.write_text(f'aws_access_key_id = "{access_key}"\nalpaca_secret_key = "{secret}"\n', encoding="utf-8")
    result = _scan(leak)
    assert result.returncode != 0
    assert "AWS Access Key" in result.stdout
    shutil.rmtree(planted)
