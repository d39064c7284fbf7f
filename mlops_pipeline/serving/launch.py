"""Deploying a team's models: start a new server, wait for ``/ready``, then retire the old one.

A deployment is recorded as :class:`Deployment` (the serving asset stores it in the team store).
A launcher serves models from local bundle folders (``sources.stage_bundle``): the server needs no
MLflow, whatever the launcher.
:func:`deploy` is the zero-downtime swap: the old server keeps answering until the new one is ready,
the record then points at the new endpoint, and only after a short drain is the old one stopped. A
new server that fails to become ready is stopped and the error carries its logs; the old one is
untouched. Deploying the same models and code again is a no-op.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from mlops_pipeline import http_clients
from mlops_pipeline.objects import Objects
from mlops_pipeline.serving.sources import ResolvedModel
from mlops_pipeline.serving.version import code_version


class LaunchError(RuntimeError):
    """A server could not be started or did not become ready; the message holds its logs."""


@dataclass(frozen=True)
class Deployment:
    team: str
    launcher: str  # "docker" or "process"
    endpoint_url: str
    models: dict[str, dict[str, Any]]  # served name -> version, run_id, source, aliases
    code_version: str
    instance_id: str  # container id or process id
    image: str | None = None
    note: str = ""  # which launcher ran and why
    placement: str = ""  # the launcher's placement (image, network, mounts)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    probe_url: str = ""  # where the launching side checks readiness, when not the endpoint itself

    @property
    def readiness_url(self) -> str:
        return self.probe_url or self.endpoint_url

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls(**json.loads(text))

    @classmethod
    def stored(cls, store: Objects, key: str) -> Deployment | None:
        """The deployment stored under ``key``, or ``None`` when there is none."""
        return cls.from_json(store.get_text(key)) if store.exists(key) else None


@dataclass(frozen=True)
class Instance:
    """A started server: its id, the URL clients call, and the URL readiness is probed on."""

    id: str
    endpoint_url: str
    probe_url: str


class Launcher(Protocol):
    kind: str
    image: str | None

    @property
    def placement(self) -> str:
        """Where its servers run (image, network, mounts): a deployment with the same models, code
        and placement is kept as it is."""
        ...

    def start(self, team: str, bundles: Mapping[str, Path], labels: Mapping[str, str]) -> Instance:
        """Start a server for ``bundles`` (served name -> local bundle folder)."""
        ...

    def running(self, instance_id: str) -> bool: ...

    def logs(self, instance_id: str) -> str: ...

    def stop(self, instance_id: str) -> None: ...


def model_table(models: list[ResolvedModel]) -> dict[str, dict[str, Any]]:
    return {
        model.name: {
            "version": model.version,
            "run_id": model.run_id,
            "source": model.source,
            "aliases": model.aliases,
        }
        for model in models
    }


def model_args(bundles: Mapping[str, Path | str]) -> list[str]:
    """The server's ``--model NAME=FOLDER`` arguments."""
    return [arg for name, folder in bundles.items() for arg in ("--model", f"{name}={folder}")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_ready(endpoint_url: str, timeout_s: float = 2.0) -> bool:
    try:
        return http_clients.get(f"{endpoint_url}/ready", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(launcher: Launcher, instance: Instance, timeout_s: float) -> None:
    """Poll ``/ready`` (one client, every 0.1 s) until 200; fail fast when the server reports a
    load failure or exits."""
    deadline = time.monotonic() + timeout_s
    with http_clients.client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(f"{instance.probe_url}/ready")
                if response.status_code == 200:
                    return
                body = response.json()
                if body.get("status") == "failed":
                    raise LaunchError(
                        f"model server at {instance.endpoint_url} failed to load models: {body.get('reason')}"
                    )
            except (httpx.HTTPError, ValueError):
                pass
            if not launcher.running(instance.id):
                raise LaunchError(f"model server {instance.id} exited before it was ready")
            time.sleep(0.1)
    raise LaunchError(f"model server at {instance.endpoint_url} not ready after {timeout_s:.0f} s")


def deploy(
    launcher: Launcher,
    team: str,
    models: list[ResolvedModel],
    bundles: Mapping[str, Path],
    previous: Deployment | None,
    *,
    publish: Callable[[Deployment], None] | None = None,
    note: str = "",
    ready_timeout_s: float = 120.0,
    drain_s: float = 1.0,
) -> tuple[Deployment, bool]:
    """Serve ``models`` (their bundles: served name -> folder) for ``team``; returns the deployment
    and whether anything changed.

    ``publish`` is called with the new deployment as soon as it is ready, before the old server is
    drained and stopped: that is where the caller switches clients to the new endpoint.
    """
    desired = model_table(models)
    version = code_version()
    if (
        previous is not None
        and previous.launcher == launcher.kind
        and previous.models == desired
        and previous.code_version == version
        and previous.placement == launcher.placement
        and is_ready(previous.readiness_url)
    ):
        return previous, False
    labels = {
        "mlops.role": "serving",
        "mlops.team": team,
        "mlops.code_version": version,
        "mlops.models": json.dumps({name: spec["version"] for name, spec in desired.items()}, sort_keys=True),
    }
    instance = launcher.start(team, bundles, labels)
    try:
        wait_ready(launcher, instance, ready_timeout_s)
    except LaunchError as exc:
        logs = launcher.logs(instance.id)
        launcher.stop(instance.id)
        raise LaunchError(f"{exc}\n--- server logs (last lines) ---\n{logs}") from None
    deployment = Deployment(
        team=team,
        launcher=launcher.kind,
        endpoint_url=instance.endpoint_url,
        models=desired,
        code_version=version,
        instance_id=instance.id,
        image=launcher.image,
        placement=launcher.placement,
        note=note,
        probe_url="" if instance.probe_url == instance.endpoint_url else instance.probe_url,
    )
    if publish is not None:
        publish(deployment)
    if previous is not None and previous.launcher == launcher.kind and previous.instance_id != instance.id:
        time.sleep(drain_s)  # clients that read the old record finish their requests
        launcher.stop(previous.instance_id)
    return deployment, True
