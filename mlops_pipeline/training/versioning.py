"""Content-addressed versions of training datasets and model directories with DVC.

Each (team, ticker) gets its own DVC workspace under the platform's home (``dvc init --no-scm``:
no git repository is created, and the project's own repository is never touched). All
workspaces share one local cache and push to one remote (a folder, or an S3 bucket), so
identical content is stored once. What identifies a version is the ``.dvc`` pointer text (md5s);
:meth:`DvcStore.pull` restores exactly those files into a fresh workspace.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

DATASET_FILE = "dataset.parquet"
MODEL_DIR = "model"
REMOTE_NAME = "storage"
T = TypeVar("T")


class VersioningError(RuntimeError):
    """DVC could not add, push or pull; the message names the remote."""


@dataclass(frozen=True)
class DvcPointers:
    """The ``.dvc`` pointer files of one training run's dataset and model directory."""

    dataset: str
    model: str

    @property
    def dataset_md5(self) -> str:
        return _md5(self.dataset)

    @property
    def model_md5(self) -> str:
        return _md5(self.model)


@dataclass(frozen=True)
class VersionResult:
    pointers: DvcPointers
    pushed_files: int
    seconds: float


class DvcStore:
    """DVC workspaces under ``root``; ``remote_url`` is a folder or ``s3://bucket/prefix``."""

    def __init__(
        self,
        root: Path,
        remote_url: str,
        endpoint_url: str | None = None,
        timeout_s: int = 30,
        attempts: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.root = root
        self.remote_url = remote_url
        self.endpoint_url = endpoint_url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def workspace(self, team: str, ticker: str) -> Path:
        return self.root / "workspaces" / team / ticker

    def version(self, team: str, ticker: str, dataset_file: Path, model_dir: Path) -> VersionResult:
        """Add the dataset file and the model directory to DVC and push them; return the pointers."""
        from dvc.repo import Repo

        started = time.perf_counter()
        workspace = self._ensure_workspace(self.workspace(team, ticker))
        dataset_target = workspace / DATASET_FILE
        model_target = workspace / MODEL_DIR
        shutil.copyfile(dataset_file, dataset_target)
        shutil.rmtree(model_target, ignore_errors=True)
        shutil.copytree(model_dir, model_target)
        with Repo(str(workspace)) as repo:
            repo.add([str(dataset_target), str(model_target)])
            pushed = self._retry("push", repo.push)
        pointers = DvcPointers(
            dataset=(workspace / f"{DATASET_FILE}.dvc").read_text(encoding="utf-8"),
            model=(workspace / f"{MODEL_DIR}.dvc").read_text(encoding="utf-8"),
        )
        return VersionResult(pointers, int(pushed or 0), time.perf_counter() - started)

    def pull(self, pointers: DvcPointers, destination: Path) -> tuple[Path, Path]:
        """Restore exactly the pointed-to dataset file and model directory under ``destination``."""
        from dvc.repo import Repo

        workspace = self._ensure_workspace(destination)
        (workspace / f"{DATASET_FILE}.dvc").write_text(pointers.dataset, encoding="utf-8")
        (workspace / f"{MODEL_DIR}.dvc").write_text(pointers.model, encoding="utf-8")
        with Repo(str(workspace)) as repo:
            self._retry("pull", lambda: repo.pull(force=True))
        return workspace / DATASET_FILE, workspace / MODEL_DIR

    def _ensure_workspace(self, workspace: Path) -> Path:
        from dvc.repo import Repo

        workspace.mkdir(parents=True, exist_ok=True)
        if not (workspace / ".dvc").is_dir():
            logging.getLogger("dvc.repo.init").setLevel(logging.WARNING)  # no "Initialized ..." line
            Repo.init(str(workspace), no_scm=True, force=True).close()
        (workspace / ".dvc" / "config").write_text(self._config_text(), encoding="utf-8")
        return workspace

    def _config_text(self) -> str:
        lines = [
            "[core]",
            f"    remote = {REMOTE_NAME}",
            "    no_scm = true",
            "    analytics = false",
            "    check_update = false",
            "[cache]",
            f"    dir = {self.cache_dir.resolve()}",
            f"['remote \"{REMOTE_NAME}\"']",
        ]
        if "://" in self.remote_url:
            lines.append(f"    url = {self.remote_url}")
            if self.endpoint_url:
                lines.append(f"    endpointurl = {self.endpoint_url}")
            lines += [f"    connect_timeout = {self.timeout_s}", f"    read_timeout = {self.timeout_s}"]
        else:
            lines.append(f"    url = {Path(self.remote_url).resolve()}")
        return "\n".join(lines) + "\n"

    def _retry(self, action: str, call: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError
        from dvc.exceptions import DvcException

        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except (DvcException, BotoCoreError, OSError) as exc:
                if attempt == self.attempts:
                    raise VersioningError(
                        f"dvc {action} to {self.remote_url} failed after {attempt} attempt(s): {exc}"
                    ) from exc
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def _md5(pointer: str) -> str:
    outs = (yaml.safe_load(pointer) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", ""))
