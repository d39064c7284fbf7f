"""The local object store's disk fills up during a session's market data: the partition being
written fails in one line naming the object store, no partial or temporary object is left, the
ticker stored before is intact, and a rerun once space is freed completes.

The store's folder is a small tmpfs (mounting needs root; the test is skipped, saying why, where
mounting is not permitted). The disk fills the moment TSLA's prices are fetched from the sandbox
standing in for AlphaVantage, after MSFT's are stored.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from _fault_proxy import FaultProxy, Rule
from conftest import AV_KEY, runs_left_started, stored_objects_read_back

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.market.store import prices_key
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.runner import start_sandbox_thread
from mlops_pipeline.session_runner import run_session

pytestmark = pytest.mark.integration

SESSION = date(2024, 3, 19)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "objects"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)]
    mounted = subprocess.run(command, capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        reason = mounted.stderr.strip() or "not root"
        pytest.skip(f"cannot mount a tmpfs for the full-disk scenario: {reason}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def _fill(disk: Path) -> None:
    """Take every free byte of ``disk``."""
    with (disk / ".filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_full_disk_fails_the_partition_cleanly_and_a_rerun_completes(
    project: Path, monkeypatch: pytest.MonkeyPatch, small_disk: Path
) -> None:
    (project / "teams" / "red.yaml").write_text("tickers: [MSFT, TSLA]\n", encoding="utf-8")
    (project / "teams" / "blue.yaml").unlink()
    sandbox = start_sandbox_thread(SandboxConfig(today=SESSION, premium_keys=frozenset({AV_KEY})))
    proxy = FaultProxy(sandbox.base_url)
    try:
        for name, value in {
            "MLOPS_MARKET_DATA": "alphavantage",
            "ALPHAVANTAGE_API_KEY": AV_KEY,
            "MLOPS_ALPHAVANTAGE_PREMIUM": "true",
            "MLOPS_ALPHAVANTAGE_BASE_URL": proxy.url,
            "MLOPS_ALPHAVANTAGE_MIN_INTERVAL_S": "0",
            "MLOPS_STORAGE_ROOT": str(small_disk),
            "MLOPS_SANDBOX_URL": sandbox.base_url,  # the broker's sandbox: this one, not an embedded one
        }.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home_path))
        ensure_home(settings)
        proxy.add(Rule(path="/query", query={"symbol": "TSLA"}, before=lambda: _fill(small_disk)))

        report = run_session(load_platform(settings), SESSION, stages=("market",))

        outcome = {run.partition: run for run in report.runs}
        assert outcome["MSFT"].status == "success", report.runs
        assert outcome["TSLA"].status == "failure", report.runs
        cause = outcome["TSLA"].note
        assert f"object store ({small_disk}): put market/prices/TSLA/{SESSION}.parquet failed" in cause, cause
        assert "No space left on device" in cause
        store = object_store_from_settings(settings)
        assert not store.exists(prices_key("TSLA", SESSION))
        leftovers = [path.name for path in small_disk.rglob(".*") if path.name != ".filler"]
        assert leftovers == []  # no temporary file
        assert stored_objects_read_back(store) == []
        assert runs_left_started() == []

        (small_disk / ".filler").unlink()
        freed = time.monotonic()
        rerun = run_session(load_platform(settings), SESSION, stages=("market",))
        print(f"disk-full recovery: {time.monotonic() - freed:.1f} s")
        assert rerun.ok, rerun.runs
        assert store.exists(prices_key("TSLA", SESSION))
        assert stored_objects_read_back(store) == []
    finally:
        proxy.stop()
        sandbox.stop()
