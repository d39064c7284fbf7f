"""Shared terminal output for the command line: one console, one way to fail."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line reason (plus detail lines, if any) to stderr and exit with ``code``."""
    first, _, rest = message.partition("\n")
    err_console.print(f"[bold red]error:[/] {first}")
    if rest:
        err_console.print(rest)
    raise typer.Exit(code)
