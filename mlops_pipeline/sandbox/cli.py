"""``sandbox`` commands: run the local market-data sandbox."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from mlops_pipeline.sandbox.defaults import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_PREMIUM_KEY

sandbox_app = typer.Typer(no_args_is_help=True)


@sandbox_app.callback()
def sandbox() -> None:
    """Local sandbox: AlphaVantage-compatible market data and an Alpaca-compatible paper broker."""


@sandbox_app.command("serve")
def serve_command(
    *,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    today: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            envvar="MLOPS_SANDBOX_TODAY",
            help="Pin the sandbox date (default: today in New York); the latest X-Sandbox-Session served.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    premium_key: Annotated[
        list[str] | None,
        typer.Option(help=f"A premium API key (repeatable; default: {DEFAULT_PREMIUM_KEY})."),
    ] = None,
    daily_limit: Annotated[int, typer.Option(help="Requests per day for free keys (0: unlimited).")] = 25,
    burst_per_second: Annotated[
        float | None, typer.Option(help="Most requests per second for free keys (default: no limit).")
    ] = None,
    broker_db: Annotated[
        Path | None,
        typer.Option(
            envvar="MLOPS_SANDBOX_BROKER_DB",
            help="Paper broker state (SQLite; default <MLOPS_HOME>/sandbox/alpaca-broker.sqlite).",
        ),
    ] = None,
    recorded: Annotated[
        Path | None,
        typer.Option(
            envvar="MLOPS_SANDBOX_RECORDED",
            help="Folder of <SYMBOL>.csv recordings (AlphaVantage daily-adjusted CSV) to serve.",
        ),
    ] = None,
    recorded_only: Annotated[
        bool,
        typer.Option(
            envvar="MLOPS_SANDBOX_RECORDED_ONLY",
            help="List only the recorded symbols (default: other symbols stay synthetic).",
        ),
    ] = False,
) -> None:
    """Serve the sandbox until interrupted."""
    from mlops_pipeline.config.settings import load_settings
    from mlops_pipeline.console import usage_error
    from mlops_pipeline.market.recording import RecordingError
    from mlops_pipeline.sandbox.config import DEFAULT_PREMIUM_KEYS, SandboxConfig
    from mlops_pipeline.sandbox.server import create_app, serve

    if recorded_only and recorded is None:
        usage_error("--recorded-only needs --recorded DIR (or MLOPS_SANDBOX_RECORDED)")
    config = SandboxConfig(
        today=today.date() if today else None,
        seed=seed,
        premium_keys=frozenset(premium_key) if premium_key else DEFAULT_PREMIUM_KEYS,
        daily_limit=daily_limit,
        burst_per_second=burst_per_second,
        broker_db=broker_db or load_settings().home_dir / "sandbox" / "alpaca-broker.sqlite",
        recorded=recorded,
        recorded_only=recorded_only,
    )
    try:
        app = create_app(config)
    except RecordingError as error:
        usage_error(f"the recording cannot be served: {error}")
    market = f"recorded from {recorded}" + (" only" if recorded_only else ", other symbols synthetic")
    typer.echo(
        f"Sandbox serving on http://{host}:{port} (AlphaVantage: /query, Alpaca: /v2; "
        f"market: {market if recorded else 'synthetic'})"
    )
    serve(app, host=host, port=port)
