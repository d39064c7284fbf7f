"""Sandbox servers on 127.0.0.1 for the sandbox tests, pinned to a known Friday."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.runner import RunningSandbox, start_sandbox_thread

SANDBOX_TODAY = date(2024, 6, 14)


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    """A shared sandbox with the default config; tests that change its state use ``start_sandbox``."""
    sandbox = start_sandbox_thread(SandboxConfig(today=SANDBOX_TODAY))
    yield sandbox.base_url
    sandbox.stop()


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., str]]:
    """Start a private sandbox with config overrides; returns its base URL. Stopped after the test."""
    running: list[RunningSandbox] = []

    def start(**overrides: Any) -> str:
        sandbox = start_sandbox_thread(SandboxConfig(**{"today": SANDBOX_TODAY, **overrides}))
        running.append(sandbox)
        return sandbox.base_url

    yield start
    for sandbox in running:
        sandbox.stop()


@pytest.fixture
def sandbox_today() -> date:
    """The date the test sandboxes are pinned to (a Friday)."""
    return SANDBOX_TODAY


@pytest.fixture(scope="module")
def synthetic_market() -> SyntheticMarket:
    """The market the default sandbox serves."""
    return SyntheticMarket()
