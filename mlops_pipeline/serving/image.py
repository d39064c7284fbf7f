"""The serving image: built from ``Dockerfile`` and a wheelhouse, reused while nothing changed.

pip inside ``docker build`` cannot see the host's package index configuration, so the wheels are
downloaded on the host first (``pip download``, which also keeps torch the CPU build) and installed
in the image with ``--no-index``. The tag is a hash of everything that goes into the image; the
dependency stage is kept as ``mlops-serving-deps:<hash>``, so a change of code alone rebuilds in
seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_pipeline.serving.version import PACKAGE_DIR

IMAGE_REPOSITORY = "mlops-serving"
SPARE_IMAGES = 2  # older serving images kept besides the current one
DEPS_REPOSITORY = "mlops-serving-deps"  # the dependency stage, reused while requirements are unchanged
DEFAULT_BASE_IMAGE = "python:3.11-slim"
REQUIREMENTS = PACKAGE_DIR / "image-requirements.txt"
# The server imports nothing else from the project.
PACKAGE_FILES = (
    "__init__.py",
    "runtime_env.py",
    "model_registry.py",
    "objects.py",
    "http_clients.py",
    "processes.py",
)


class ImageUnavailableError(RuntimeError):
    """The serving image cannot be had here: no base image, no wheels or a failed build (the reason)."""


def _digest(paths: list[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for value in extra:
        digest.update(value.encode())
    return digest.hexdigest()[:12]


def _package_sources() -> list[Path]:
    root = PACKAGE_DIR.parent
    return [root / name for name in PACKAGE_FILES] + sorted(
        path for path in PACKAGE_DIR.iterdir() if path.is_file() and not path.name.endswith(".pyc")
    )


def image_tag(base_image: str) -> str:
    return f"{IMAGE_REPOSITORY}:{_digest(_package_sources(), base_image)}"


def ensure_wheelhouse(cache_dir: Path, timeout_s: float = 1800) -> Path:
    """Wheels for ``image-requirements.txt`` (downloaded once per requirements version)."""
    target = cache_dir / f"wheelhouse-{_digest([REQUIREMENTS])}"
    if (target / ".complete").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".wheelhouse-"))
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(staging)]
    result = subprocess.run(
        [*command, "-r", str(REQUIREMENTS)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImageUnavailableError(f"pip download for the serving image failed:\n{result.stderr[-3000:]}")
    (staging / ".complete").touch()
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def build_context(dest: Path, wheelhouse: Path) -> Path:
    """Assemble the build context: Dockerfile, requirements, wheelhouse (hard links) and code."""
    shutil.copy2(PACKAGE_DIR / "Dockerfile", dest / "Dockerfile")
    shutil.copy2(REQUIREMENTS, dest / "requirements.txt")
    shutil.copytree(wheelhouse, dest / "wheelhouse", copy_function=_link_or_copy)
    package = dest / "mlops_pipeline"
    shutil.copytree(PACKAGE_DIR, package / "serving", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in PACKAGE_FILES:
        shutil.copy2(PACKAGE_DIR.parent / name, package / name)
    return dest


def _link_or_copy(source: str, target: str) -> None:
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)
SECRET_FILE_NAMES = (".env", ".env.*", "id_rsa", "id_ed25519", "*.p12", "credentials")


def audit_image(client: Any, image: str) -> list[str]:
    """What in ``image`` looks like a secret: environment variables with a credential-like name
    and a value, and files named like ``.env``, private SSH keys or ``credentials``. Empty when clean."""
    findings = [
        f"environment variable {entry.split('=', 1)[0]} is set in the image"
        for entry in client.images.get(image).attrs["Config"].get("Env") or []
        if "=" in entry and entry.split("=", 1)[1] and SECRET_NAME.search(entry.split("=", 1)[0])
    ]
    names = [part for name in SECRET_FILE_NAMES for part in ("-o", "-name", name)][1:]
    command = ["find", "/", "-xdev", "(", *names, ")", "-print"]
    # As root: the image's own user cannot read every folder a secret could hide in.
    output = client.containers.run(
        image, command, entrypoint="", user="root", network_mode="none", remove=True
    )
    findings += [f"file {path}" for path in output.decode().split() if not path.startswith(("/proc", "/sys"))]
    return findings


def _build(
    client: Any,
    context: Path,
    tag: str,
    base_image: str,
    progress: Callable[[str], None],
    target: str | None = None,
) -> None:
    log: list[str] = []
    for chunk in client.api.build(
        path=str(context),
        tag=tag,
        target=target,
        buildargs={"BASE_IMAGE": base_image},
        network_mode="none",
        rm=True,
        forcerm=True,
        labels={"mlops.role": "serving-deps" if target else "serving"},
        decode=True,
    ):
        if "error" in chunk:
            tail = "".join(log)[-3000:]
            raise ImageUnavailableError(
                f"building {tag} from {base_image} failed: {str(chunk['error']).strip()}\n{tail}"
            )
        text = str(chunk.get("stream", ""))
        log.append(text)
        if text.startswith("Step "):
            progress(f"serving image {tag}: step {text.removeprefix('Step ').strip()}")


def ensure_base_image(client: Any, base_image: str) -> None:
    """``base_image`` on this engine, pulled if missing; :class:`ImageUnavailableError` when it cannot be."""
    import docker.errors

    try:
        client.images.get(base_image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(base_image)
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:300]
        raise ImageUnavailableError(
            f"the base image {base_image} (MLOPS_SERVING_BASE_IMAGE) is not on this Docker engine and "
            f"cannot be pulled: {reason}"
        ) from exc


def ensure_image(
    client: Any,
    cache_dir: Path,
    base_image: str = DEFAULT_BASE_IMAGE,
    progress: Callable[[str], None] = lambda _line: None,
) -> str:
    """The serving image's tag, building it unless an image with the same content exists (a build
    then removes the older versions' images, see :func:`prune_images`). ``progress`` receives one
    line per build step ("step 3/9: RUN pip install ..."). Raises :class:`ImageUnavailableError`
    when the image cannot be built here, with the reason."""
    import docker.errors

    tag = image_tag(base_image)
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        _build_image(client, cache_dir, tag, base_image, progress)
        prune_images(client, IMAGE_REPOSITORY, keep=tag)
    return tag


def _build_image(
    client: Any, cache_dir: Path, tag: str, base_image: str, progress: Callable[[str], None]
) -> None:
    ensure_base_image(client, base_image)
    progress(f"building the serving image {tag} from {base_image}: downloading its wheels")
    wheelhouse = ensure_wheelhouse(cache_dir)
    deps_tag = f"{DEPS_REPOSITORY}:{_digest([REQUIREMENTS, PACKAGE_DIR / 'Dockerfile'], base_image)}"
    with tempfile.TemporaryDirectory(prefix="mlops-serving-build-") as tmp:
        context = build_context(Path(tmp), wheelhouse)
        # The dependency stage is kept under its own tag: a code change rebuilds only the code layers.
        _build(client, context, deps_tag, base_image, progress, target="build")
        _build(client, context, tag, base_image, progress)
    findings = audit_image(client, tag)
    if findings:
        client.images.remove(tag, force=True)
        raise RuntimeError(f"refusing image {tag}: it holds secrets: {'; '.join(findings)}")
    prune_images(client, DEPS_REPOSITORY, keep=deps_tag, spare=0)


def prune_images(client: Any, repository: str, keep: str, spare: int = SPARE_IMAGES) -> None:
    """Remove the images of ``repository`` but ``keep`` and the ``spare`` newest others (another
    checkout's version, or the one to roll back to), so that builds do not fill the disk. An image
    a container still uses (the server a swap replaces) is never removed."""
    import docker.errors

    others = [image for image in client.images.list(name=repository) if keep not in image.tags]
    others.sort(key=lambda image: image.attrs["Created"], reverse=True)
    for image in others[spare:]:
        for stale_tag in image.tags:
            with contextlib.suppress(docker.errors.APIError):  # in use: kept
                client.images.remove(stale_tag)
