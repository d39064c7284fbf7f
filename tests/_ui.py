"""Helpers for the Dagster UI tests: the Materialize dialog of partitioned assets (Playwright) and
the webserver's GraphQL API (runs, asset launches, backfills, sensors)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

LOCATION = "mlops_pipeline.definitions"
REPOSITORY = "__repository__"
_RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
_BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
_RUN_LINK = re.compile(r"^/runs/([0-9a-f-]{36})$")


def launch_from_materialize_dialog(
    page: Any,
    open_button: str | re.Pattern[str],
    sessions: str,
    ticker: str,
    partitions: int,
    launch_button: str | re.Pattern[str],
    screenshot: Path,
) -> str:
    """On an asset or job page: open the Materialize dialog, type ``sessions`` (a session or a range
    like ``[2024-03-22...2024-03-26]``), pick ``ticker``, check the count of selected partitions,
    take a screenshot and launch. Returns the text of the confirmation toast."""
    page.get_by_role("button", name=open_button).first.click(timeout=60_000)
    dialog = page.get_by_role("dialog")
    session_box = dialog.get_by_placeholder("ex: ", exact=False)
    session_box.fill(sessions)
    session_box.press("Enter")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem", name=ticker).click()
    # Close the ticker list by clicking the dialog's title (Escape could close the whole dialog).
    dialog.get_by_text("Launch runs to materialize").click()
    count = f"{partitions} partition" + ("s" if partitions != 1 else "")
    dialog.get_by_text(count, exact=True).wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot))
    dialog.get_by_role("button", name=launch_button).click()
    toast = page.get_by_text(re.compile(r"^(Launched run|Created backfill) \S+$"))
    toast.wait_for(timeout=120_000)
    return toast.inner_text()


def launched_run_id(page: Any) -> str:
    """The run behind the 'Launched run …' toast: its View link names the full run id."""
    for link in page.locator("a[href^='/runs/']").all():
        match = _RUN_LINK.match(link.get_attribute("href") or "")
        if match:
            return match.group(1)
    raise AssertionError("no link to the launched run on the page")


def _sensor_selector(name: str) -> dict[str, str]:
    return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}


def stop_sensor(client: Any, name: str) -> None:
    """Switch a sensor off (as its toggle in the UI does)."""
    found = client._execute(
        """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
             __typename ... on Sensor { jobOriginId sensorState { selectorId } } } }""",
        {"selector": _sensor_selector(name)},
    )["sensorOrError"]
    assert found["__typename"] == "Sensor", found
    stopped = client._execute(
        """mutation($origin: String!, $selector: String!) {
             stopSensor(jobOriginId: $origin, jobSelectorId: $selector) {
               __typename ... on StopSensorMutationResult { instigationState { status } } } }""",
        {"origin": found["jobOriginId"], "selector": found["sensorState"]["selectorId"]},
    )["stopSensor"]
    assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped


def sensor_ticked(client: Any, name: str) -> bool:
    """Whether the daemon has finished a tick of the sensor."""
    found = client._execute(
        """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
             __typename ... on Sensor { sensorState { ticks(limit: 5) { status } } } } }""",
        {"selector": _sensor_selector(name)},
    )["sensorOrError"]
    assert found["__typename"] == "Sensor", found
    return any(tick["status"] in {"SUCCESS", "SKIPPED"} for tick in found["sensorState"]["ticks"])


def materialize(client: Any, asset_path: list[str], partition: str) -> str:
    """Launch one partition of one asset as the Materialize button of its page does (the same
    GraphQL mutation, on the implicit asset job); the run id."""
    launched = client._execute(
        """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "params": {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "pipelineName": "__ASSET_JOB",
                    "assetSelection": [{"path": asset_path}],
                    "assetCheckSelection": [],
                },
                "mode": "default",
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
            }
        },
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def submit(client: Any, job: str, partition: str) -> str:
    return client.submit_job_execution(
        job,
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        tags={"dagster/partition": partition},
    )


def wait_for_run(client: Any, run_id: str, timeout_s: float = 300.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in _RUN_DONE:
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish in {timeout_s:.0f} s")


def wait_for_backfill(client: Any, backfill_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """Poll the backfill until the daemon marks it done; returns its status, partitions and runs."""
    query = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 __typename ... on PartitionBackfill {
                   id status partitionNames runs(limit: 100) { runId status } } } }"""
    deadline = time.monotonic() + timeout_s
    backfill: dict[str, Any] = {}
    while time.monotonic() < deadline:
        backfill = client._execute(query, {"id": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] in _BACKFILL_DONE:
            return backfill
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} did not finish in {timeout_s:.0f} s: {backfill}")
