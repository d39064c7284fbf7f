"""Team overlays read from a git ref: ``git:<ref>[:<path>]``, e.g. ``git:team/red:teams/red.yaml``.

The file is read with ``git show <commit>:<path>``: the working tree is never checked out or
touched. The ref is resolved to a commit SHA first, so the text and the recorded commit always
match even if the branch moves meanwhile. Without ``:<path>`` the team's usual overlay path
(``teams/<team>.yaml`` relative to the repository root) is read at the ref.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlops_pipeline.config.errors import ConfigError

GIT_PREFIX = "git:"
GIT_TIMEOUT_S = 30.0
CONFIG_SOURCE_TAG = "mlops/config_source"
CONFIG_COMMIT_TAG = "mlops/config_commit"


@dataclass(frozen=True)
class ConfigSource:
    """Where a team's overlay was read from: a file in the working tree, or a file at a git commit."""

    path: str  # "teams/red.yaml" (relative to the teams folder's parent, or to the git repository root)
    ref: str | None = None  # as configured, e.g. "team/red"
    commit: str | None = None  # the full SHA the ref resolved to

    @property
    def display(self) -> str:
        """How errors name the overlay: ``teams/red.yaml`` or ``git:team/red:teams/red.yaml@1a2b3c4d``."""
        if self.ref is None:
            return self.path
        at = f"@{self.commit[:8]}" if self.commit else ""
        return f"{GIT_PREFIX}{self.ref}:{self.path}{at}"

    def tags(self) -> dict[str, str]:
        """Run tags / metadata that record the overlay's origin (the commit SHA for git overlays)."""
        tags = {CONFIG_SOURCE_TAG: self.path if self.ref is None else f"{GIT_PREFIX}{self.ref}:{self.path}"}
        if self.commit:
            tags[CONFIG_COMMIT_TAG] = self.commit
        return tags


@dataclass(frozen=True)
class GitSpec:
    ref: str
    path: str


def is_git_source(spec: str) -> bool:
    return spec.startswith(GIT_PREFIX)


def parse_git_source(spec: str, default_path: str, file: str = "", key: str = "") -> GitSpec:
    """Parse ``git:<ref>[:<path>]``; ``file`` and ``key`` name where the spec was configured."""
    where = file or spec

    def problem(message: str) -> ConfigError:
        return ConfigError.single(where, key, message)

    if not isinstance(spec, str) or not is_git_source(spec):
        raise problem(f"team source must look like git:<ref>[:<path>], got {spec!r}")
    ref, _, path = spec[len(GIT_PREFIX) :].partition(":")
    path = path or default_path
    if not ref or ref.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in ref):
        raise problem(f"invalid git ref {ref!r} in {spec!r}")
    posix = PurePosixPath(path)
    if posix.is_absolute() or ".." in posix.parts or not path.endswith(".yaml"):
        raise problem(f"the path in {spec!r} must be a relative .yaml path inside the repository")
    return GitSpec(ref, posix.as_posix())


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise ConfigError.single(
            str(repo), "", "git is not installed (needed for git: team sources)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError.single(str(repo), "", f"git {args[0]} timed out after {GIT_TIMEOUT_S:g}s") from exc


def repository_root(path: Path) -> Path:
    """The top folder of the git repository that contains ``path``."""
    result = _git(path, "rev-parse", "--show-toplevel")
    if result.returncode != 0:
        raise ConfigError.single(str(path), "", "not inside a git repository (needed for git: team sources)")
    return Path(result.stdout.decode().strip())


def resolve_commit(repo: Path, ref: str, display: str) -> str:
    """The full commit SHA ``ref`` points at; a clear error when the ref does not exist."""
    result = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if result.returncode != 0:
        raise ConfigError.single(display, "", f"unknown git ref {ref!r} in {repo}")
    return result.stdout.decode().strip()


def read_git_overlay(repo: Path, spec: GitSpec) -> tuple[str, ConfigSource]:
    """The overlay's text at ``spec.ref`` and where it came from (with the resolved commit)."""
    display = f"{GIT_PREFIX}{spec.ref}:{spec.path}"
    commit = resolve_commit(repo, spec.ref, display)
    source = ConfigSource(path=spec.path, ref=spec.ref, commit=commit)
    result = _git(repo, "show", f"{commit}:{spec.path}")
    if result.returncode != 0:
        raise ConfigError.single(source.display, "", f"file {spec.path!r} not found at ref {spec.ref!r}")
    try:
        return result.stdout.decode("utf-8"), source
    except UnicodeDecodeError as exc:
        raise ConfigError.single(source.display, "", "not UTF-8 text") from exc
