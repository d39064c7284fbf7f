"""The Dagster UI in a real browser, and the daily jobs launched through Dagster's GraphQL API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _net import free_port, stop_process, wait_for_http
from _ui import (
    LOCATION,
    launch_from_materialize_dialog,
    launched_run_id,
    stop_sensor,
    submit,
    wait_for_backfill,
    wait_for_run,
)

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


COMMUNITY_DIALOG = "Join the Dagster community"  # a first visit's dialog, over any page


def _visit(page, url: str, expected: list[str], screenshot: Path) -> str:
    """Open ``url``, wait for every expected text and for no dialog over them, take a screenshot."""
    from playwright.sync_api import expect

    page.goto(url)
    for text in expected:
        page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
    expect(page.get_by_text(COMMUNITY_DIALOG)).to_be_hidden()  # nothing covers the screenshot
    page.screenshot(path=str(screenshot), full_page=True)
    return page.inner_text("body")


# Red trades MSFT with a tiny model and a permissive gate, so one short training run yields a champion.
SMALL_RED = (
    "tickers: [MSFT]\n"
    "model: {ludwig_config: tiny_mlp.yaml, train_window_days: 200}\n"
    "evaluation: {folds: 3, test_days: 10, purge_days: 5}\n"
    "promotion: {min_skill_vs_naive: -1.0}\n"
)


@pytest.mark.system
@pytest.mark.timeout(1200)  # a Dagster instance, its daemon and Chromium: 3-7 min on 2 busy cores
def test_the_asset_graph_in_a_browser_and_session_partitions_launched_by_clicks(
    project: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlops ui` serves Dagster's UI and evidently's. A user browses the asset catalog, a team's
    asset and the lineage; then launches a three-session backfill of the market data and one
    session x ticker cell of red/predictions from the Materialize dialogs, while red's upstream
    jobs run over the GraphQL API. The daemon runs them all and the files appear."""
    import pandas as pd
    import yaml
    from dagster_graphql import DagsterGraphQLClient
    from playwright.sync_api import sync_playwright

    tiny = yaml.safe_load((project / "ludwig_configs" / "return_mlp.yaml").read_text(encoding="utf-8"))
    tiny["combiner"].update(output_size=16, num_fc_layers=1)
    tiny["trainer"].update(epochs=2)
    (project / "ludwig_configs" / "tiny_mlp.yaml").write_text(yaml.safe_dump(tiny), encoding="utf-8")
    (project / "teams" / "red.yaml").write_text(SMALL_RED, encoding="utf-8")
    monkeypatch.setenv("MLOPS_SANDBOX_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", "2024-03-27")
    monkeypatch.setenv("MLOPS_SERVING_LAUNCHER", "process")
    port, evidently_port = free_port(), free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlops_pipeline.cli", "ui", "--port", str(port),
         "--evidently-port", str(evidently_port)],
        cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    objects = isolated_env / "objects"
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout_s=180)
        # evidently's UI runs next to Dagster's, on the embedded workspace
        wait_for_http(f"http://127.0.0.1:{evidently_port}/api/version", timeout_s=120)
        assert (isolated_env / "evidently").is_dir()
        base = f"http://127.0.0.1:{port}"
        artifacts = _artifacts_dir()
        (artifacts / "ui-sessions-failure.png").unlink(missing_ok=True)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        # Only the clicks below launch the stages: no automation runs in between.
        stop_sensor(client, "session_automation")
        # The upstream of red/predictions for 2024-03-27|MSFT runs over the API while the browser works.
        upstream = submit(client, "market_daily", "2024-03-27|MSFT")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # Dagster's first-visit community dialog, dismissed in this browser as its Skip button
            # does: it comes up a second after a page loads, over any page, even over the
            # Materialize dialog, whose clicks it then takes.
            page.add_init_script(f"localStorage.setItem('communityNux', {json.dumps(json.dumps('1'))})")
            try:
                # The catalog lists assets alphabetically and renders what fits the window.
                catalog = _visit(page, f"{base}/assets", ["blue / backtest"], artifacts / "ui-catalog.png")
                assert page.evaluate("() => localStorage.getItem('communityNux')") == json.dumps("1")
                assert "blue / champion" in catalog and "blue / model" in catalog
                _visit(  # the asset's page names its team and the job that materializes it
                    page,
                    f"{base}/assets/red/training_dataset",
                    ["training_dataset", "team: red", "red_train"],
                    artifacts / "ui-red-asset.png",
                )
                _visit(page, f"{base}/asset-groups", ["market"], artifacts / "ui-lineage.png")
                assert (artifacts / "ui-catalog.png").stat().st_size > 10_000

                # A backfill of the market data over 2024-03-22 (Fri) .. 2024-03-26 (Tue): the
                # weekend is no partition, so the range holds three sessions.
                _visit(
                    page,
                    f"{base}/locations/{LOCATION}/jobs/market_daily",
                    ["market_daily"],
                    artifacts / "ui-sessions-1-market-job.png",
                )
                toast = launch_from_materialize_dialog(
                    page,
                    re.compile(r"Materialize all"),
                    "[2024-03-22...2024-03-26]",
                    "MSFT",
                    partitions=3,
                    launch_button="Launch backfill",
                    screenshot=artifacts / "ui-sessions-2-backfill-dialog.png",
                )
                backfill_id = re.fullmatch(r"Created backfill (\S+)", toast).group(1)
                page.screenshot(path=str(artifacts / "ui-sessions-3-backfill-launched.png"))

                for job, partition in (("red_train", "2024-03-27|MSFT"), ("red_serve", "2024-03-27")):
                    assert wait_for_run(client, upstream) == "SUCCESS", upstream
                    upstream = submit(client, job, partition)
                assert wait_for_run(client, upstream) == "SUCCESS", upstream

                backfill = wait_for_backfill(client, backfill_id)
                assert backfill["status"] == "COMPLETED_SUCCESS", backfill
                assert sorted(backfill["partitionNames"]) == [
                    "2024-03-22|MSFT",
                    "2024-03-25|MSFT",
                    "2024-03-26|MSFT",
                ]
                assert [run["status"] for run in backfill["runs"]] == ["SUCCESS"] * 3, backfill
                _visit(
                    page,
                    f"{base}/runs/b/{backfill_id}",
                    ["Succeeded"],
                    artifacts / "ui-sessions-4-backfill.png",
                )

                # One cell of red/predictions: session 2024-03-27 x MSFT, one run.
                _visit(
                    page,
                    f"{base}/assets/red/predictions",
                    ["red_predict"],
                    artifacts / "ui-sessions-5-predictions-asset.png",
                )
                toast = launch_from_materialize_dialog(
                    page,
                    re.compile(r"Materialize…"),
                    "2024-03-27",
                    "MSFT",
                    partitions=1,
                    launch_button="Launch 1 run",
                    screenshot=artifacts / "ui-sessions-6-predictions-dialog.png",
                )
                assert toast.startswith("Launched run"), toast
                run_id = launched_run_id(page)
                assert wait_for_run(client, run_id) == "SUCCESS", run_id
                run_page = _visit(
                    page,
                    f"{base}/runs/{run_id}",
                    ["RUN_SUCCESS"],
                    artifacts / "ui-sessions-7-predictions-run.png",
                )
                assert "2024-03-27|MSFT" in run_page
            except BaseException:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(artifacts / "ui-sessions-failure.png"), full_page=True)
                raise
            finally:
                browser.close()

        for session in ("2024-03-22", "2024-03-25", "2024-03-26"):
            assert (objects / "market" / "prices" / "MSFT" / f"{session}.parquet").is_file(), session
            assert (objects / "market" / "features" / "MSFT" / f"{session}.parquet").is_file(), session
        assert not (objects / "market" / "prices" / "MSFT" / "2024-03-23.parquet").exists()
        assert (objects / "teams" / "red" / "datasets" / "MSFT" / "2024-03-27.parquet").is_file()
        prediction = pd.read_parquet(
            objects / "teams" / "red" / "predictions" / "MSFT" / "2024-03-27.parquet"
        )
        assert len(prediction) == 1
        assert prediction["as_of_date"].iloc[0] == pd.Timestamp("2024-03-27")
        assert prediction["target_date"].iloc[0] == pd.Timestamp("2024-03-28")
        assert prediction["model_name"].iloc[0] == "red-MSFT"
    finally:
        stop_process(ui, timeout_s=60)
        # Anything of the server still alive in its session (webserver, daemon, code server, runs).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGTERM)
    with pytest.raises(httpx.ConnectError):  # `mlops ui` stopped the evidently UI with Dagster's
        httpx.get(f"http://127.0.0.1:{evidently_port}/api/version", timeout=5)
