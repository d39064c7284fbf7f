"""The Docker launcher: one container per deployment, serving bundles mounted read-only.

Models reach the container as files, never over the network: the deployment stages each model's
bundle in a local folder, and the container mounts it read-only (each folder bound at
``/models/<name>``, or, with ``bundles_volume``, the named volume that holds the bundle folder at the
same path as on the launching side, for a platform that itself runs in a container). The server
needs neither MLflow nor its credentials.

Two network modes: the host network, the server bound to 127.0.0.1 on a free port (the default); or
a Docker network (``network``, e.g. the compose stack's), the server on :data:`NETWORK_PORT` and
reached by its container name from other containers of that network, probed by its IP.

Secrets never enter a container's configuration: ``docker inspect`` would show them to anyone
with access to the engine. They are copied into the created container as a file readable only by
the server's user (:data:`CREDENTIALS_FILE`), which the server reads at start.
"""

from __future__ import annotations

import io
import os
import secrets
import tarfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_pipeline.serving.launch import Instance, LaunchError, free_port, model_args

# The only variable a serving container needs from the launching side: the bearer token.
CREDENTIAL_ENV = frozenset({"MLOPS_SERVING_TOKEN"})
CREDENTIALS_FILE = "/run/mlops/credentials.env"
CREDENTIALS_FILE_ENV = "MLOPS_CREDENTIALS_FILE"
SERVER_UID = 10001  # the image's USER
# A compose stack's project label (on its network) and compose's flag for service containers.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_ONE_OFF_LABEL = "com.docker.compose.oneoff"
NETWORK_PORT = 8000
MODELS_MOUNT = PurePosixPath("/models")


def docker_client(timeout_s: float = 10.0) -> tuple[Any | None, str]:
    """A client for a daemon that answers, or ``None`` and why not."""
    try:
        import docker
        import requests
    except ImportError as exc:
        return None, f"docker SDK not installed ({exc})"
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        return None, f"no Docker daemon answers ({type(exc).__name__}: {str(exc)[:200]})"
    return client, ""


def runtime_env() -> dict[str, str]:
    return {name: os.environ[name] for name in sorted(CREDENTIAL_ENV) if os.environ.get(name)}


class DockerLauncher:
    kind = "docker"

    def __init__(
        self,
        client: Any,
        image: str,
        env: Mapping[str, str],
        *,
        network: str | None = None,
        bundles_volume: str | None = None,
        bundles_root: Path | None = None,
    ) -> None:
        if bundles_volume is not None and bundles_root is None:
            raise ValueError("bundles_volume needs bundles_root: where the volume holds the bundles")
        self.client = client
        self.image = image
        self.env = dict(env)
        self.network = network
        self.bundles_volume = bundles_volume
        self.bundles_root = bundles_root

    @property
    def placement(self) -> str:
        network = self.network or "host"
        return f"image {self.image}, network {network}, bundles {self.bundles_volume or self.bundles_root}"

    def _mounts(self, bundles: Mapping[str, Path]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Read-only volumes and, per served name, the bundle's path inside the container."""
        if self.bundles_volume is None:
            inside = {name: str(MODELS_MOUNT / name) for name in bundles}
            return {
                str(Path(folder).resolve()): {"bind": inside[name], "mode": "ro"}
                for name, folder in bundles.items()
            }, inside
        assert self.bundles_root is not None
        outside = [
            name for name, folder in bundles.items() if not Path(folder).is_relative_to(self.bundles_root)
        ]
        if outside:
            raise LaunchError(
                f"bundles of {outside} are not under {self.bundles_root}, the folder that the volume "
                f"{self.bundles_volume} holds (MLOPS_SERVING_BUNDLES_DIR)"
            )
        volume = {self.bundles_volume: {"bind": str(self.bundles_root), "mode": "ro"}}
        return volume, {name: str(folder) for name, folder in bundles.items()}

    def start(self, team: str, bundles: Mapping[str, Path], labels: Mapping[str, str]) -> Instance:
        volumes, inside = self._mounts(bundles)
        name = f"mlops-serving-{team}-{secrets.token_hex(3)}"
        if self.network is None:
            port, host, placement = free_port(), "127.0.0.1", {"network_mode": "host"}
        else:
            port, host, placement = NETWORK_PORT, "0.0.0.0", {"network": self.network}  # noqa: S104
        plain = {name: value for name, value in self.env.items() if name not in CREDENTIAL_ENV}
        credentials = {name: value for name, value in self.env.items() if name in CREDENTIAL_ENV}
        if credentials:
            plain[CREDENTIALS_FILE_ENV] = CREDENTIALS_FILE
        container = self.client.containers.create(
            self.image,
            command=["--host", host, "--port", str(port), *model_args(inside)],
            name=name,
            environment=plain,
            labels={**labels, **self._stack_labels()},
            volumes=volumes,
            **placement,
        )
        try:
            if credentials:
                container.put_archive("/", credentials_archive(credentials))
            container.start()
            if self.network is None:
                url = f"http://127.0.0.1:{port}"
                return Instance(container.id, url, url)
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]
        except Exception:
            container.remove(force=True)
            raise
        return Instance(container.id, f"http://{name}:{port}", f"http://{address}:{port}")

    def _stack_labels(self) -> dict[str, str]:
        """On a compose stack's network, the stack's project label: the serving containers are then
        the project's (orphan) containers, and ``docker compose down --remove-orphans`` removes them
        with the stack instead of failing on a network that still has endpoints."""
        import docker.errors

        if self.network is None:
            return {}
        try:
            project = (self.client.networks.get(self.network).attrs.get("Labels") or {}).get(
                COMPOSE_PROJECT_LABEL
            )
        except docker.errors.NotFound:
            return {}  # creating the container names the missing network
        return {COMPOSE_PROJECT_LABEL: project, COMPOSE_ONE_OFF_LABEL: "False"} if project else {}

    def _container(self, instance_id: str) -> Any | None:
        import docker.errors

        try:
            return self.client.containers.get(instance_id)
        except docker.errors.NotFound:
            return None

    def running(self, instance_id: str) -> bool:
        container = self._container(instance_id)
        return container is not None and container.status in {"created", "running"}

    def logs(self, instance_id: str) -> str:
        container = self._container(instance_id)
        return container.logs(tail=60).decode(errors="replace") if container is not None else ""

    def stop(self, instance_id: str) -> None:
        container = self._container(instance_id)
        if container is not None:
            container.stop(timeout=10)
            container.remove(force=True)


def credentials_archive(secrets: Mapping[str, str]) -> bytes:
    """A tar holding :data:`CREDENTIALS_FILE` (``NAME=value`` lines), owned by the server, mode 0400."""
    body = "".join(f"{name}={value}\n" for name, value in sorted(secrets.items())).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(os.path.dirname(CREDENTIALS_FILE).lstrip("/"))
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, SERVER_UID, SERVER_UID
        archive.addfile(folder)
        entry = tarfile.TarInfo(CREDENTIALS_FILE.lstrip("/"))
        entry.size, entry.mode, entry.uid, entry.gid = len(body), 0o400, SERVER_UID, SERVER_UID
        archive.addfile(entry, io.BytesIO(body))
    return buffer.getvalue()


def load_credentials_file(environ: MutableMapping[str, str] = os.environ) -> None:
    """Export the variables of the file named by ``MLOPS_CREDENTIALS_FILE`` (the container side)."""
    path = environ.get(CREDENTIALS_FILE_ENV)
    if not path:
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            name, sep, value = line.rstrip("\n").partition("=")
            if sep and name in CREDENTIAL_ENV:
                environ.setdefault(name, value)
