"""Reach the sandbox server the settings point at, starting an embedded one when none is configured.

``MLOPS_SANDBOX_URL`` names a sandbox someone else runs (it must answer). Without it, the embedded
default is a sandbox on ``127.0.0.1:MLOPS_SANDBOX_PORT``: reused if one already answers there,
otherwise started as a child process for the duration of the ``with`` block.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import httpx

from mlops_pipeline import http_clients
from mlops_pipeline.config.settings import PlatformSettings

logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = 90.0  # a busy host: its imports alone can take 20 s
_REQUEST_TIMEOUT = httpx.Timeout(5.0)


class SandboxUnavailableError(RuntimeError):
    """The configured sandbox does not answer."""


def sandbox_answers(url: str) -> bool:
    try:
        return http_clients.get(f"{url}/_sandbox/health", timeout=_REQUEST_TIMEOUT).status_code == 200
    except httpx.HTTPError:
        return False


def embedded_sandbox_url(settings: PlatformSettings) -> str:
    return settings.sandbox_url or f"http://127.0.0.1:{settings.sandbox_port}"


def uses_sandbox(settings: PlatformSettings) -> bool:
    return settings.market_data == "sandbox" or settings.broker == "sandbox"


@contextmanager
def ensure_sandbox(settings: PlatformSettings) -> Iterator[str]:
    """Yield the URL of an answering sandbox (starting and later stopping one if needed)."""
    url = embedded_sandbox_url(settings)
    if settings.sandbox_url:
        if not sandbox_answers(url):
            raise SandboxUnavailableError(f"MLOPS_SANDBOX_URL={url} does not answer on /_sandbox/health")
        yield url
        return
    if sandbox_answers(url):
        _check_same_market(url, settings)
        logger.info("using the sandbox already running at %s", url)
        yield url
        return
    command = [
        sys.executable, "-m", "mlops_pipeline.cli", "sandbox", "serve",
        "--host", "127.0.0.1", "--port", str(settings.sandbox_port), "--seed", str(settings.sandbox_seed),
    ]  # fmt: skip
    if settings.sandbox_today:
        command += ["--today", settings.sandbox_today.isoformat()]
    if settings.sandbox_recorded:
        command += ["--recorded", str(settings.sandbox_recorded)]
        if settings.sandbox_recorded_only:
            command.append("--recorded-only")
    logger.info("no market sandbox configured: starting the embedded one at %s", url)
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not sandbox_answers(url):
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise SandboxUnavailableError(
                    f"the embedded sandbox exited at start: {stderr.strip()[-500:]}"
                )
            if time.monotonic() > deadline:
                raise SandboxUnavailableError(f"the embedded sandbox did not answer at {url} in time")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """In the sandbox's process before it starts: SIGTERM when the process that started it dies, even
    by SIGKILL, so that a killed run never leaves its sandbox holding the port (Linux)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _check_same_market(url: str, settings: PlatformSettings) -> None:
    """Refuse to reuse a sandbox that serves another market than the settings ask for."""
    from mlops_pipeline.market.recording import discover_recordings

    wanted = sorted(discover_recordings(settings.sandbox_recorded)) if settings.sandbox_recorded else []
    wanted_synthetic = not settings.sandbox_recorded_only
    try:
        response = http_clients.get(f"{url}/_sandbox/market", timeout=_REQUEST_TIMEOUT)
        response.raise_for_status()
        served, synthetic = sorted(response.json()["recorded"]), bool(response.json()["synthetic"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        served, synthetic = [], True  # a sandbox that predates recordings serves the synthetic market
    if (served, synthetic) != (wanted, wanted_synthetic):
        raise SandboxUnavailableError(
            f"the sandbox already running at {url} serves another market "
            f"(recorded: {', '.join(served) or 'none'}{'' if synthetic else ', recorded only'}) "
            "than MLOPS_SANDBOX_RECORDED asks for "
            f"({', '.join(wanted) or 'none'}); stop it or set MLOPS_SANDBOX_PORT"
        )


def sandbox_today(url: str) -> date | None:
    """The today the sandbox at ``url`` was configured with (``None`` when it does not answer)."""
    try:
        response = http_clients.get(f"{url}/_sandbox/clock", timeout=_REQUEST_TIMEOUT)
        response.raise_for_status()
        return date.fromisoformat(response.json()["today"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None
