"""Shared fixtures (an isolated platform environment, a project copy, moto's S3 server) and the
test tiers.

Every test belongs to one tier: ``system`` (Docker, docker-compose, Chromium, PostgreSQL),
``integration`` (real components: servers on 127.0.0.1, Ludwig training, MLflow and DVC stores)
or ``unit``. A test is in the tier of its marker, or of the server fixtures it uses (a sandbox,
moto's S3 server, trained models: integration; PostgreSQL: system), whichever is higher; anything
else is a unit test. A unit test that opens a TCP socket fails, naming the address: ``make
test-fast`` runs the unit tier anywhere, without a service.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from _net import free_port

from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.runner import RunningSandbox, start_sandbox_thread

REPO_ROOT = Path(__file__).resolve().parents[1]
# Seconds each test file took in a whole run on two workers (`make test-durations` measures them).
DURATIONS = Path(__file__).with_name("durations.json")
TIERS = ("unit", "integration", "system")
FIXTURE_TIERS = {
    "sandbox_url": "integration",
    "start_sandbox": "integration",
    "moto_endpoint": "integration",
    "trained": "integration",
    "registry": "integration",
    "bundles": "integration",
    "postgres": "system",
}
_INET = (socket.AF_INET, socket.AF_INET6)

# An xdist worker computes on one thread, as the platform's runs do (``run_preload``): with a worker
# per core, torch's and OpenMP's default of a thread per core puts two busy threads on every core.
# Two training-heavy files on two workers took 153 s of user CPU with the default, 123 s with one.
# Set before any test imports torch, which reads it once; a value set by the user is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations", action="store_true", help=f"write each test file's seconds to {DURATIONS.name}"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test gets exactly one tier marker: the highest of its markers and its server fixtures.

    The files come longest first (``durations.json``; a file not in it counts a second a test), so
    that with xdist's ``--no-loadscope-reorder`` the suite ends on short files on every worker
    instead of one worker finishing a long file alone."""
    _tier_markers(items)
    known = _measured_durations()
    counts = Counter(_file_of(item.nodeid) for item in items)
    items.sort(key=lambda item: -known.get(_file_of(item.nodeid), counts[_file_of(item.nodeid)]))  # stable


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _measured_durations() -> dict[str, float]:
    return json.loads(DURATIONS.read_text(encoding="utf-8")) if DURATIONS.is_file() else {}


def _tier_markers(items: list[pytest.Item]) -> None:
    for item in items:
        marked = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
        used = [FIXTURE_TIERS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_TIERS]
        tier = max([*marked, *used], key=TIERS.index, default="unit")
        if marked and marked != [tier]:
            raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(marked)}; it belongs to {tier}")
        if not marked:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def unit_tests_stay_off_the_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test may not connect or bind a TCP socket (mark it ``integration`` if it must)."""
    if request.node.get_closest_marker("unit") is None:
        return
    for method in ("connect", "connect_ex", "bind"):
        original = getattr(socket.socket, method)

        def refuse(
            sock: socket.socket, address: Any, *, _original: Any = original, _method: str = method
        ) -> Any:
            if sock.family in _INET:
                pytest.fail(
                    f"unit test {request.node.nodeid} tried to {_method} a TCP socket ({address}): "
                    "mark it integration",
                    pytrace=False,
                )
            return _original(sock, address)

        monkeypatch.setattr(socket.socket, method, refuse)


_ISOLATED_PREFIXES = ("MLOPS_", "ALPHAVANTAGE_", "DAGSTER_HOME", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Every test gets its own state folder and no platform variables from the outer shell; model
    servers deployed during the test (they outlive runs by design) are stopped afterwards. Model
    servers are local processes unless a test chooses the launcher: ``auto`` would start a Docker
    container for every deployment wherever a daemon answers (as in CI). They run one worker
    process unless a test chooses: the default (one per usable core) adds a fork server and a
    second worker to each of the dozens of deployments in the suite, about 1.5 s of CPU each; the
    tests of several workers (tests/serving/test_serving_workers.py, the fault tests' homes) keep
    or set it."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / ".mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")
    monkeypatch.setenv("MLOPS_SERVING_WORKERS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield home
    _stop_deployments(tmp_path)


def _stop_deployments(root: Path) -> None:
    records = list(root.glob("**/teams/*/serving/deployment.json"))
    if not records:
        return
    from mlops_pipeline.serving.deployment import stop_deployment
    from mlops_pipeline.serving.launch import Deployment

    for record in records:
        stop_deployment(Deployment.from_json(record.read_text()))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the repository's teams/ and ludwig_configs/ used as the project folder."""
    root = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "teams", root / "teams")
    shutil.copytree(REPO_ROOT / "ludwig_configs", root / "ludwig_configs")
    monkeypatch.setenv("MLOPS_PROJECT_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 for the whole session; stopped at the end."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# Sandbox servers on 127.0.0.1 for the market-data and sandbox tests, pinned to a known Friday.
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


class _Durations:
    """Sums every phase of every test by file on the controlling process; at the end, when every
    test passed, the files measured replace their entries (a partial run keeps the others)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[_file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.testsfailed or not self.seconds:
            return
        merged = {
            **_measured_durations(),
            **{name: round(seconds, 1) for name, seconds in self.seconds.items()},
        }
        ordered = dict(sorted(merged.items(), key=lambda entry: -entry[1]))
        DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--store-durations") and not os.environ.get("PYTEST_XDIST_WORKER"):
        config.pluginmanager.register(_Durations(), "mlops-durations")
