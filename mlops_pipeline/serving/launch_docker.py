"""The Docker launcher: one container per deployment, on the host network, bound to 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
        container = self.client.containers.run(
            self.image,
            command=command,
            name=f"mlops-serving-{team}-{port}",
            detach=True,
            network_mode="host",
            environment=self.env,
            labels=dict(labels),
        )
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
