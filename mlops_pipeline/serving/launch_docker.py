"""The Docker launcher: one container per deployment, on the host network, bound to 127.0.0.1.

Secrets never enter a container's configuration: ``docker inspect`` would show them to anyone
with access to the engine. They are copied into the created container as a file readable only by
the server's user (:data:`CREDENTIALS_FILE`), which the server reads at start; only non-secret
variables are passed as environment.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping, MutableMapping
from typing import Any

# Passed to the container at run time when set here: where models live and how to reach them.
RUNTIME_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "MLOPS_SERVING_TOKEN",
)
CREDENTIAL_ENV = frozenset(
    {
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "MLOPS_SERVING_TOKEN",
    }
)
CREDENTIALS_FILE = "/run/mlops/credentials.env"
CREDENTIALS_FILE_ENV = "MLOPS_CREDENTIALS_FILE"
SERVER_UID = 10001  # the image's USER


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


def runtime_env(tracking_uri: str | None) -> dict[str, str]:
    env = {name: os.environ[name] for name in RUNTIME_ENV if os.environ.get(name)}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


class DockerLauncher:
    kind = "docker"

    def __init__(self, client: Any, image: str, env: Mapping[str, str]) -> None:
        self.client = client
        self.image = image
        self.env = dict(env)

    def start(self, team: str, model_args: list[str], port: int, labels: Mapping[str, str]) -> str:
        command = ["--host", "127.0.0.1", "--port", str(port)]
        for arg in model_args:
            command += ["--model", arg]
        plain = {name: value for name, value in self.env.items() if name not in CREDENTIAL_ENV}
        secrets = {name: value for name, value in self.env.items() if name in CREDENTIAL_ENV}
        if secrets:
            plain[CREDENTIALS_FILE_ENV] = CREDENTIALS_FILE
        container = self.client.containers.create(
            self.image,
            command=command,
            name=f"mlops-serving-{team}-{port}",
            network_mode="host",
            environment=plain,
            labels=dict(labels),
        )
        try:
            if secrets:
                container.put_archive("/", credentials_archive(secrets))
            container.start()
        except Exception:
            container.remove(force=True)
            raise
        return container.id

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
