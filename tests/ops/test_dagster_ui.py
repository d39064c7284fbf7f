"""The Dagster UI in a real browser, and the daily jobs launched through Dagster's GraphQL API."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _net import free_port, stop_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    return found


def _artifacts_dir() -> Path:
    folder = Path(os.environ.get("MLOPS_TEST_ARTIFACTS_DIR", REPO_ROOT / ".ci" / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _visit(page, url: str, expected: list[str], screenshot: Path) -> str:
    """Open ``url``, dismiss the first-visit dialog, wait for every expected text, take a screenshot."""
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    with contextlib.suppress(Exception):
        skip.click(timeout=5000)
    for text in expected:
        page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(screenshot), full_page=True)
    return page.inner_text("body")


def _wait_for_run(client, run_id: str, timeout_s: float = 240.0) -> str:
    from dagster import DagsterRunStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}:
            return status.value
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish in {timeout_s:.0f} s")


@pytest.mark.slow
def test_asset_graph_in_browser_and_jobs_over_graphql(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_graphql import DagsterGraphQLClient
    from playwright.sync_api import sync_playwright

    (project / "teams" / "red.yaml").write_text("tickers: [MSFT]\n", encoding="utf-8")
    monkeypatch.setenv("MLOPS_SANDBOX_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-03-27")
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlops_pipeline.cli", "ui", "--port", str(port)],
        cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout_s=180)
        artifacts = _artifacts_dir()
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The catalog lists assets alphabetically and renders what fits the window.
            catalog = _visit(page, f"{base}/assets", ["blue / backtest"], artifacts / "ui-catalog.png")
            assert "blue / champion" in catalog and "blue / model" in catalog
            team_page = _visit(
                page,
                f"{base}/assets/red/training_dataset",
                ["training_dataset"],
                artifacts / "ui-red-asset.png",
            )
            assert "team: red" in team_page and "red_train" in team_page
            _visit(page, f"{base}/asset-groups", ["market"], artifacts / "ui-lineage.png")
            browser.close()
        assert (artifacts / "ui-catalog.png").stat().st_size > 10_000

        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        location = "mlops_pipeline.definitions"
        for job in ("market_daily", "red_train"):
            run_id = client.submit_job_execution(
                job,
                repository_location_name=location,
                repository_name="__repository__",
                tags={"dagster/partition": "2024-03-27|MSFT"},
            )
            assert _wait_for_run(client, run_id) == "SUCCESS", job
        dataset = isolated_env / "objects" / "teams" / "red" / "datasets" / "MSFT" / "2024-03-27.parquet"
        assert dataset.is_file()
    finally:
        stop_process(ui, timeout_s=60)
