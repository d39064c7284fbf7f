"""``mlops serve``: run the model server for one or many models on one port.

Mount it in the main CLI with ``app.command("serve")(serve)``; it also runs on its own as
``python -m mlops_pipeline.serving.cli --model ... --port N`` (the container's entry point).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_TOKEN_ENV = "MLOPS_SERVING_TOKEN"  # noqa: S105 - the variable's name, not a secret


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
    threads: Annotated[int, typer.Option(min=1, help="torch intra-op threads")] = 1,
    cache_dir: Annotated[Path | None, typer.Option(help="Where downloaded models are kept")] = None,
) -> None:
    """Serve models over REST (Ludwig form API, JSON API, MLflow scoring protocol, KServe V2)."""
    import torch
    import uvicorn

    from mlops_pipeline.serving.app import ServerConfig, create_app
    from mlops_pipeline.serving.launch_docker import load_credentials_file
    from mlops_pipeline.serving.registry import ModelRegistry
    from mlops_pipeline.serving.sources import ModelSourceError, parse_model_ref
    from mlops_pipeline.serving.version import code_version

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    load_credentials_file()
    try:
        refs = [parse_model_ref(text) for text in model]
    except ModelSourceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    if tracking_uri is None and any(ref.path is None for ref in refs):
        from mlops_pipeline.config.settings import load_settings

        tracking_uri = load_settings().mlflow_tracking_uri
    torch.set_num_threads(threads)
    config = ServerConfig(
        max_rows=max_rows,
        max_body_bytes=max_body_bytes,
        token=os.environ.get(token_env) or None,
        code_version=code_version(),
    )
    app = create_app(ModelRegistry(refs, tracking_uri, cache_dir), config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,  # nothing uses the client's address: skip parsing X-Forwarded-*
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


serve_app = typer.Typer(add_completion=False, help="The model server.")
serve_app.command()(serve)

if __name__ == "__main__":
    serve_app()
