"""A team's serving deployment: resolve its champions, export them, pick a launcher, deploy."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlops_pipeline.model_registry import CHAMPION, registered_model_name
from mlops_pipeline.serving.launch import Deployment, Launcher, LaunchError, deploy
from mlops_pipeline.serving.launch_docker import DockerLauncher, docker_client, runtime_env
from mlops_pipeline.serving.launch_process import ProcessLauncher
from mlops_pipeline.serving.sources import (
    ModelSourceError,
    ResolvedModel,
    parse_model_ref,
    resolve,
    stage_bundle,
)


def champion_ref(team: str, ticker: str) -> str:
    return f"models:/{registered_model_name(team, ticker)}@{CHAMPION}"


def resolve_champions(
    team: str, tickers: list[str], tracking_uri: str
) -> tuple[list[ResolvedModel], dict[str, str]]:
    """The champion of every ticker that has one, and why the others have none."""
    models, missing = [], {}
    for ticker in tickers:
        try:
            models.append(resolve(parse_model_ref(champion_ref(team, ticker)), tracking_uri))
        except ModelSourceError as exc:
            missing[ticker] = str(exc)
    return models, missing


@dataclass(frozen=True)
class DockerPlacement:
    """Where serving containers run and how they get the bundles (see ``launch_docker``)."""

    network: str | None = None  # None: the host network, bound to 127.0.0.1
    bundles_volume: str | None = None  # None: each bundle folder bind-mounted


def select_launcher(
    mode: str,
    work_dir: Path,
    base_image: str,
    image_cache_dir: Path,
    bundles_dir: Path,
    placement: DockerPlacement = DockerPlacement(),
    progress: Callable[[str], None] = lambda _line: None,
) -> tuple[Launcher, str]:
    """The launcher for ``mode`` (auto/docker/process) and a sentence saying which one and why."""
    from mlops_pipeline.serving.image import ImageUnavailableError, ensure_image

    process = ProcessLauncher(work_dir / "logs")
    if mode == "process":
        return process, "local process: MLOPS_SERVING_LAUNCHER=process"
    client, why_not = docker_client()
    if client is not None:
        try:
            image = ensure_image(client, image_cache_dir, base_image, progress)
        except ImageUnavailableError as exc:
            why_not = f"no serving image: {exc}"
        else:
            launcher = DockerLauncher(
                client,
                image,
                runtime_env(),
                network=placement.network,
                bundles_volume=placement.bundles_volume,
                bundles_root=bundles_dir,
            )
            why = "MLOPS_SERVING_LAUNCHER=docker" if mode == "docker" else "a Docker daemon answers"
            where = f"on network {placement.network}" if placement.network else "on the host network"
            mounted = f"volume {placement.bundles_volume}" if placement.bundles_volume else bundles_dir
            return launcher, f"docker: {why}; image {image} {where}, bundles read-only from {mounted}"
    if mode == "docker":
        raise LaunchError(f"MLOPS_SERVING_LAUNCHER=docker but {why_not}")
    return process, f"local process: {why_not.splitlines()[0][:300]}"


class NoChampionError(LaunchError):
    """No ticker of the team has a champion yet: nothing to serve (a normal state, not a fault)."""


def stop_deployment(deployment: Deployment) -> None:
    """Stop a deployment's server (a process by its PID, a container by its id), if it still runs."""
    if deployment.launcher == "process":
        ProcessLauncher(Path()).stop(deployment.instance_id)
        return
    client, _ = docker_client()
    if client is not None:
        DockerLauncher(client, deployment.image or "", {}).stop(deployment.instance_id)


@contextmanager
def deployment_lock(work_dir: Path, team: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold the team's deployment lock: one deployment of a team at a time across processes (two
    runs of one session launched at once deploy one server, the second finds it serving). The lock
    is a file lock, released by the operating system when its holder dies."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / "deploy.lock").open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LaunchError(
                        f"team {team}: another deployment has held {work_dir / 'deploy.lock'} for "
                        f"{timeout_s:.0f} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_strays(work_dir: Path, team: str, keep: str) -> list[str]:
    """Stop the team's local model servers other than ``keep`` (servers a killed run started but
    never recorded); call it holding :func:`deployment_lock`. Their PIDs."""
    launcher = ProcessLauncher(work_dir / "logs")
    strays = []
    for log in sorted(launcher.log_dir.glob("server-*.log")):
        pid = log.stem.removeprefix("server-")
        if pid != keep and pid.isdigit() and launcher.serves_team(pid, team):
            launcher.stop(pid)
            strays.append(pid)
    return strays


def retire(previous: Deployment, current: Launcher) -> None:
    """Stop a previous deployment that ran under another launcher kind (the swap stops same-kind ones)."""
    if previous.launcher != current.kind:
        stop_deployment(previous)


def deploy_team(
    team: str,
    tickers: list[str],
    *,
    mode: str,
    tracking_uri: str,
    work_dir: Path,
    base_image: str,
    previous: Deployment | None,
    image_cache_dir: Path | None = None,
    bundles_dir: Path | None = None,
    placement: DockerPlacement = DockerPlacement(),
    publish: Callable[[Deployment], None] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> tuple[Deployment, bool, dict[str, str]]:
    """Serve the team's champions; returns the deployment, whether it changed, and skipped tickers.

    Each champion's bundle is exported to its MLflow run once and staged under ``bundles_dir`` (default
    ``<work_dir>/bundles``), from where the server loads it: no launcher needs MLflow. ``publish``
    records a new deployment before the previous server is stopped (see ``launch.deploy``);
    ``progress`` receives the steps of a serving image build.
    """
    models, missing = resolve_champions(team, tickers, tracking_uri)
    if not models:
        details = "; ".join(f"{ticker}: {reason}" for ticker, reason in missing.items())
        raise NoChampionError(f"team {team} has no champion model to serve ({details})")
    bundles_dir = bundles_dir or work_dir / "bundles"
    bundles = {}
    for model in models:
        bundles[model.name] = stage_bundle(model, tracking_uri, bundles_dir)
    launcher, note = select_launcher(
        mode, work_dir, base_image, image_cache_dir or work_dir, bundles_dir, placement, progress
    )
    deployment, changed = deploy(launcher, team, models, bundles, previous, publish=publish, note=note)
    if changed and previous is not None:
        retire(previous, launcher)
    return deployment, changed, missing
