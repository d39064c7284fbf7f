"""The stack's images, built offline as the README tells a machine without registry access, on the
local base image: the platform and MLflow images from the repository's Dockerfiles, the lock's
wheels downloaded on the host (quick after ``make setup``: pip's cache has them) and served on
127.0.0.1 to ``docker build --network host``; PostgreSQL from Debian's packages
(deploy/compose/ci-postgres). Each tag is a hash of everything that goes into its image, so each is
built once per version and kept between runs (only the current tag of each repository is kept)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("MLOPS_BASE_IMAGE", "mlops-base:local")
CACHE = Path(tempfile.gettempdir()) / "mlops-platform-image-cache"
LOCK = REPO_ROOT / "requirements.lock"
BUILD_TOOLS = ("setuptools-scm[toml]>=6.2", "wheel")
PLATFORM_INPUTS = (
    "Dockerfile", "requirements.lock", "pyproject.toml", "README.md", "mlops_pipeline", "teams",
    "ludwig_configs", "deploy/dagster",
)  # fmt: skip


def _digest(paths: list[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    for value in extra:
        digest.update(value.encode())
    return digest.hexdigest()[:12]


def _input_files(inputs: tuple[str, ...]) -> list[Path]:
    files = []
    for name in inputs:
        path = REPO_ROOT / name
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in found if "__pycache__" not in p.parts]
    return files


def wheelhouse() -> Path:
    """Every wheel (and sdist) of the lock, hash-checked, in one folder."""
    target = CACHE / f"wheels-{_digest([LOCK], *BUILD_TOOLS)}"
    if (target / ".complete").is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=CACHE, prefix=".wheels-"))
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
    subprocess.run([*command, "-r", str(LOCK), "--dest", str(staging)], check=True, timeout=1800)
    # The lock's few sdists (ludwig, gpustat, antlr4) are built in the image: their build tools too.
    tools = [sys.executable, "-m", "pip", "download", "--quiet", *BUILD_TOOLS, "--dest", str(staging)]
    subprocess.run(tools, check=True, timeout=600)
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1 (pip reads its listing as --find-links). The port
    follows from the folder's name when it is free: the URL is a build argument, and the same URL
    lets Docker reuse the dependency layer when only the code changed."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = partial(Quiet, directory=str(directory))
    try:
        port = 20000 + int(hashlib.sha256(directory.name.encode()).hexdigest(), 16) % 10000
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:  # taken: any free port (the dependency layer is built again)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _image(repository: str, context: str, inputs: tuple[str, ...], wheels: bool) -> str:
    """The tag of ``repository``'s image of this checkout, built from ``context`` unless it exists.
    One build at a time across processes: test files on other xdist workers wait for it and reuse it."""
    tag = f"{repository}:{_digest(_input_files(inputs), BASE_IMAGE)}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        exists = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
        if exists.returncode != 0:
            _build(repository, tag, context, wheels)
    return tag


def _build(repository: str, tag: str, context: str, wheels: bool) -> None:
    with contextlib.ExitStack() as stack:
        build = [
            "docker",
            "build",
            "--network",
            "host",
            "--tag",
            tag,
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
        ]
        if wheels:
            url = stack.enter_context(served(wheelhouse()))
            build += ["--build-arg", "PIP_NO_INDEX=1", "--build-arg", f"PIP_FIND_LINKS={url}"]
        result = subprocess.run(
            [*build, str(REPO_ROOT / context)], capture_output=True, text=True, timeout=1800, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"docker build of {tag} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    listed = ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository]
    images = subprocess.run(listed, capture_output=True, text=True, check=False).stdout.split()
    stale = [name for name in images if name != tag]
    if stale:  # only the current image of each repository (the platform's is 3+ GB) and those
        # a container still uses are kept
        subprocess.run(["docker", "image", "rm", *stale], capture_output=True, check=False)


def platform_image() -> str:
    """The platform image (code location, webserver, daemon, evidently UI; moto's S3 server in CI)."""
    return _image("mlops-platform", ".", PLATFORM_INPUTS, wheels=True)


def mlflow_image() -> str:
    """The MLflow tracking server's image (mlflow-tracking-server/, the lock's subset)."""
    return _image("mlops-mlflow", "mlflow-tracking-server", ("mlflow-tracking-server",), wheels=True)


def postgres_image() -> str:
    """PostgreSQL from Debian's packages, standing in for ``postgres:16`` (deploy/compose/ci.yml)."""
    return _image(
        "mlops-ci-postgres", "deploy/compose/ci-postgres", ("deploy/compose/ci-postgres",), wheels=False
    )
