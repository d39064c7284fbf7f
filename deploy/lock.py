"""Refresh the lock: ``make lock``.

``requirements.lock`` holds every dependency of ``pyproject.toml`` (with the ``dev`` extra), resolved
by pip-compile with hashes, followed by ``[tool.mlops] unresolved`` (ludwig: locked with its hash,
never resolved, as its own pins conflict with evidently's). ``make setup`` and the platform image
install it with ``pip install --no-deps --require-hashes``.

The two slim images install subsets of it, compiled from their ``.in`` files with the lock as
constraints, so every version they hold is the lock's:
``mlops_pipeline/serving/image-requirements.txt`` (the model server) and
``mlflow-tracking-server/requirements.txt`` (the MLflow server).

Arguments are passed to pip-compile: ``--upgrade`` moves every pin to the newest version allowed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
SUBSETS = (
    ROOT / "mlops_pipeline" / "serving" / "image-requirements.in",
    ROOT / "mlflow-tracking-server" / "requirements.in",
)
_COMPILE = [
    sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe",
    "--strip-extras", "--no-emit-index-url", "--no-emit-find-links", "--newline", "LF",
]  # fmt: skip


def _compile(*args: str) -> None:
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
    subprocess.run([*_COMPILE, *sys.argv[1:], *args], cwd=ROOT, env=env, check=True)


def _unresolved_block() -> str:
    """``[tool.mlops] unresolved`` as lock entries with the sha256 of each downloaded file."""
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mlops"]["unresolved"]
    lines = [
        "",
        "# [tool.mlops] unresolved in pyproject.toml: locked, never resolved (installed with --no-deps).",
    ]
    for pin in pins:
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, pin]
            subprocess.run(command, check=True)
            digests = sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in Path(tmp).iterdir())
        lines.append(f"{pin} \\")
        lines += [
            f"    --hash=sha256:{digest}" + (" \\" if i < len(digests) - 1 else "")
            for i, digest in enumerate(digests)
        ]
    return "\n".join(lines) + "\n"


def _pins(path: Path) -> int:
    return sum(line[:1].isalnum() for line in path.read_text(encoding="utf-8").splitlines())


def main() -> None:
    _compile("--extra", "dev", "--output-file", LOCK.name, "pyproject.toml")
    with LOCK.open("a", encoding="utf-8") as lock:
        lock.write(_unresolved_block())
    print(f"{LOCK.relative_to(ROOT)}: {_pins(LOCK)} pins")
    for source in SUBSETS:
        target = source.with_suffix(".txt")
        relative = [str(path.relative_to(ROOT)) for path in (LOCK, target, source)]
        _compile("--constraint", relative[0], "--output-file", relative[1], relative[2])
        print(f"{target.relative_to(ROOT)}: {_pins(target)} pins, all from the lock")


if __name__ == "__main__":
    main()
