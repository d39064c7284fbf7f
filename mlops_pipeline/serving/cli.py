"""``mlops serve``: run the model server for one or many models on one port.

Mount it in the main CLI with ``app.command("serve")(serve)``; it also runs on its own as
``python -m mlops_pipeline.serving.cli --model ... --port N`` (the container's entry point).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from starlette.applications import Starlette

DEFAULT_TOKEN_ENV = "MLOPS_SERVING_TOKEN"  # noqa: S105 - the variable's name, not a secret
WORKER_SPEC_ENV = "MLOPS_SERVING_WORKER_SPEC"
WORKER_MODULE = "mlops_pipeline.serving.cli"
GROUP_DIR_PREFIX = "mlops-serving-workers-"  # then the server's pid: <prefix><pid>-<random>


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker process builds its app from (passed to them in ``WORKER_SPEC_ENV``)."""

    models: list[str]
    tracking_uri: str | None
    token_env: str
    max_rows: int
    max_body_bytes: int
    threads: int
    download_dir: str | None
    workers: int
    group_dir: str | None  # the workers' shared folder when there are several
    supervisor_pid: int  # the process that starts the workers


# Imported once by the workers' fork server, which forks every worker: torch and ONNX Runtime took
# about 1.5 s of CPU in each worker (two per server by default on two cores, started together).
WORKER_PRELOAD = ("torch", "onnxruntime", "mlops_pipeline.serving.app")  # the app: its registry too


def _exit_with_the_supervisor(supervisor_pid: int) -> None:
    """SIGTERM this worker when its supervisor exits (even by kill -9), so that no worker outlives
    the server it belongs to, holding its port. The worker's parent is the workers' fork server,
    which itself lives as long as a worker does, so the worker watches the supervisor (a pidfd)."""
    import select
    import signal
    import threading

    try:
        watched = os.pidfd_open(supervisor_pid)
    except ProcessLookupError:  # gone already
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def stop_when_it_exits() -> None:
        select.select([watched], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_it_exits, name="supervisor-watch", daemon=True).start()


def _fork_workers_from_a_preloaded_server() -> None:
    """Have uvicorn start its workers from a fork server that imported ``WORKER_PRELOAD`` once,
    instead of a fresh interpreter each (uvicorn's ``spawn`` context, a module attribute it reads
    at every worker start, also when it replaces a dead worker)."""
    import multiprocessing

    import uvicorn._subprocess

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    uvicorn._subprocess.spawn = context  # type: ignore[assignment]


def worker_app() -> Starlette:
    """The app of one worker process (uvicorn's factory)."""
    import torch

    from mlops_pipeline.serving.app import ServerConfig, create_app
    from mlops_pipeline.serving.registry import ModelRegistry
    from mlops_pipeline.serving.sources import parse_model_ref
    from mlops_pipeline.serving.version import code_version
    from mlops_pipeline.serving.workers import WorkerGroup

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = WorkerSpec(**json.loads(os.environ[WORKER_SPEC_ENV]))
    if spec.workers > 1:
        _exit_with_the_supervisor(spec.supervisor_pid)
    torch.set_num_threads(spec.threads)
    config = ServerConfig(
        max_rows=spec.max_rows,
        max_body_bytes=spec.max_body_bytes,
        token=os.environ.get(spec.token_env) or None,
        code_version=code_version(),
    )
    group = WorkerGroup(Path(spec.group_dir), spec.workers) if spec.group_dir is not None else None
    refs = [parse_model_ref(text) for text in spec.models]
    download_dir = Path(spec.download_dir) if spec.download_dir is not None else None
    return create_app(ModelRegistry(refs, spec.tracking_uri, download_dir, group), config, group=group)


def serve(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            help="models:/<name>@<alias>, models:/<name>/<version>, a run id or a folder; NAME=... renames",
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    tracking_uri: Annotated[
        str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI")
    ] = None,
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding the bearer token (unset: no auth)")
    ] = DEFAULT_TOKEN_ENV,
    max_rows: Annotated[int, typer.Option(min=1, help="Rows per request")] = 10_000,
    max_body_bytes: Annotated[int, typer.Option(min=1024, help="Request body size limit")] = 8 * 1024 * 1024,
    threads: Annotated[
        int, typer.Option(min=1, help="Threads per forward pass (torch and ONNX Runtime)")
    ] = 1,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="MLOPS_SERVING_WORKERS",
            help="Server processes sharing the port, each loading the models (default: one per usable core)",
        ),
    ] = None,
    download_dir: Annotated[
        Path | None, typer.Option(help="Where models are downloaded to load (removed once loaded)")
    ] = None,
) -> None:
    """Serve models over REST (Ludwig form API, JSON API, MLflow scoring protocol, KServe V2)."""
    import uvicorn

    from mlops_pipeline.serving.launch_docker import load_credentials_file
    from mlops_pipeline.serving.sources import ModelSourceError, parse_model_ref

    load_credentials_file()
    try:
        refs = [parse_model_ref(text) for text in model]
    except ModelSourceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    if tracking_uri is None and any(ref.path is None for ref in refs):
        from mlops_pipeline.config.settings import load_settings

        tracking_uri = load_settings().mlflow_tracking_uri
    workers = workers or usable_cores()
    remove_folders_of_dead_servers(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"{GROUP_DIR_PREFIX}{os.getpid()}-") as group_dir:
        spec = WorkerSpec(
            models=model,
            tracking_uri=tracking_uri,
            token_env=token_env,
            max_rows=max_rows,
            max_body_bytes=max_body_bytes,
            threads=threads,
            download_dir=str(download_dir) if download_dir is not None else None,
            workers=workers,
            group_dir=group_dir if workers > 1 else None,
            supervisor_pid=os.getpid(),
        )
        os.environ[WORKER_SPEC_ENV] = json.dumps(asdict(spec))  # the workers inherit it
        if workers > 1:
            _fork_workers_from_a_preloaded_server()
        uvicorn.run(
            f"{WORKER_MODULE}:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            proxy_headers=False,  # nothing uses the client's address: skip parsing X-Forwarded-*
            log_level="warning",
            timeout_graceful_shutdown=10,
            timeout_worker_healthcheck=30,  # a worker loading its models answers the supervisor late
        )


def remove_folders_of_dead_servers(root: Path) -> None:
    """Remove the workers' folders under ``root`` of servers no longer running: a server stopped by
    a signal removes its own, one killed (kill -9, the OOM killer) leaves it behind."""
    from mlops_pipeline.processes import alive

    for folder in root.glob(f"{GROUP_DIR_PREFIX}*-*"):
        pid = folder.name.removeprefix(GROUP_DIR_PREFIX).split("-", 1)[0]
        if not (pid.isascii() and pid.isdigit() and len(pid) <= 10):  # not a server's folder
            continue
        if not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


serve_app = typer.Typer(add_completion=False, help="The model server.")
serve_app.command()(serve)

if __name__ == "__main__":
    serve_app()
