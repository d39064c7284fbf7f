"""Monitoring in evidently's workspace: snapshot size and time per snapshot next to the former
self-contained HTML report, and a team dashboard's load time over 250 sessions x 3 tickers.

1. Real reports (crafted features and predictions, the pipeline's own code) for ``REAL_SESSIONS``
   sessions: the time to compute a report (drift, performance, checks, the merged snapshot), the
   time to store it in a local workspace, and its stored size; side by side, the former format
   (evidently's self-contained HTML of the same report, now only produced on demand by
   ``mlops monitoring export``): the time to render and write it, and its size.
2. A workspace with ``SESSIONS`` x ``TICKERS`` snapshots (each ticker's real snapshot, cloned per
   session with its own timestamp, tags and perturbed metric values), served by ``evidently ui``:
   the UI's start-up (it loads every snapshot), and the dashboard page as the browser loads it
   (project info, dashboard, then one ``data_series_batch`` request per panel, six at a time like a
   browser; also one after the other), cold and warm; one snapshot's page data; the UI's memory.
3. Writing through the remote workspace API (as in the compose stack): time per snapshot.

Writes benchmarks/results/monitoring_workspace.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "monitoring"))

from _monitoring_frames import crafted_report  # noqa: E402
from _net import free_port, stop_process, wait_for_http  # noqa: E402

from mlops_pipeline.monitoring.dashboard import build_dashboard  # noqa: E402
from mlops_pipeline.monitoring.publish import publish_report  # noqa: E402
from mlops_pipeline.monitoring.workspace import LocalWorkspace, RemoteWorkspace  # noqa: E402
from mlops_pipeline.resources.object_store import LocalObjectStore  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TICKERS = ["AAPL", "MSFT", "NVDA"]
REAL_DAYS = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"]
BROWSER_CONNECTIONS = 6
WARM_REPEAT = 5
REMOTE_WRITES = 10


def _real_reports(root: Path) -> dict[str, Any]:
    workspace = LocalWorkspace(root / "evidently", "http://127.0.0.1:8000")
    store = LocalObjectStore(root=str(root / "objects")).scoped("teams/red")
    rows = []
    for day in REAL_DAYS:
        started = time.perf_counter()
        report = crafted_report(day)
        computed = time.perf_counter() - started
        started = time.perf_counter()
        published = publish_report(workspace, store, report, ["AAPL"])
        stored = time.perf_counter() - started
        assert report.snapshot is not None and published.snapshot_id is not None
        started = time.perf_counter()
        html = report.snapshot.get_html_str(as_iframe=False)
        (root / f"{day}.html").write_text(html, encoding="utf-8")
        rendered = time.perf_counter() - started
        rows.append(
            {
                "session": day,
                "report_s": computed,
                "store_snapshot_s": stored,
                "snapshot_bytes": published.snapshot_bytes,
                "html_render_write_s": rendered,
                "html_bytes": len(html.encode("utf-8")),
            }
        )
    first_store = rows[0]["store_snapshot_s"]  # includes creating the project and the reference dataset
    later = rows[1:]
    return {
        "rows": rows,
        "median_report_s": statistics.median(row["report_s"] for row in later),
        "median_store_snapshot_s": statistics.median(row["store_snapshot_s"] for row in later),
        "first_store_snapshot_s": first_store,
        "median_snapshot_bytes": statistics.median(row["snapshot_bytes"] for row in rows),
        "max_snapshot_bytes": max(row["snapshot_bytes"] for row in rows),
        "median_html_render_write_s": statistics.median(row["html_render_write_s"] for row in rows),
        "median_html_bytes": statistics.median(row["html_bytes"] for row in rows),
    }


def _perturbed(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                item * (1 + rng.uniform(-0.2, 0.2))
                if key == "value" and isinstance(item, float)
                else _perturbed(item, rng)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_perturbed(item, rng) for item in value]
    return value


def _synthetic_workspace(root: Path, sessions: int) -> dict[str, Any]:
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

    workspace = LocalWorkspace(root, "http://127.0.0.1:8000")
    project = workspace.ensure_project("bench", TICKERS, "regression")
    templates = {ticker: crafted_report("2024-07-10", ticker=ticker).snapshot for ticker in TICKERS}
    rng = random.Random(7)
    first = date(2023, 7, 3)
    days = [
        first + timedelta(days=offset)
        for offset in range(sessions * 2)
        if (first + timedelta(days=offset)).weekday() < 5
    ]
    started = time.perf_counter()
    written = 0
    for day in days[:sessions]:
        for ticker, template in templates.items():
            assert template is not None
            model = template.to_snapshot_model().dict()
            model.update(
                name=f"bench / {ticker} / {day.isoformat()}",
                timestamp=datetime(day.year, day.month, day.day),
                tags=["team:bench", f"ticker:{ticker}", f"session:{day.isoformat()}", "model_version:1"],
                metric_results=_perturbed(model["metric_results"], rng),
            )
            workspace.add_snapshot(project, Snapshot.load_model(SnapshotModel.parse_obj(model)))
            written += 1
    elapsed = time.perf_counter() - started
    size = sum(path.stat().st_size for path in (root / project / "snapshots").iterdir())
    return {"project": project, "snapshots": written, "write_s": elapsed, "workspace_bytes": size}


def _rss_mb(pid: int) -> float | None:
    status = Path(f"/proc/{pid}/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _dashboard_load(client: httpx.Client, url: str, project: str, concurrent: bool) -> tuple[float, int, int]:
    """Seconds to load the dashboard page's data; number of panels; points received."""
    started = time.perf_counter()
    client.get(f"{url}/api/projects/{project}/info").raise_for_status()
    dashboard = client.get(f"{url}/api/v2/dashboards/{project}").json()

    def panel(values: list[dict[str, Any]]) -> int:
        body = {
            "series_filter": [
                {k: v[k] for k in ("tags", "metadata", "metric", "metric_labels")} for v in values
            ]
        }
        response = client.post(f"{url}/api/v2/snapshots/{project}/data_series_batch", json=body)
        response.raise_for_status()
        return sum(len(series["values"]) for series in response.json()["series"])

    panels = [item["values"] for item in dashboard["panels"]]
    if concurrent:
        with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
            points = sum(pool.map(panel, panels))
    else:
        points = sum(panel(values) for values in panels)
    return time.perf_counter() - started, len(panels), points


def _ui_measurements(workspace: Path, project: str) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "evidently.cli",
        "ui",
        "--workspace",
        str(workspace),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_http(f"{url}/api/version", timeout_s=900)
        start_s = time.perf_counter() - started
        with httpx.Client(timeout=300) as client:
            cold_s, panels, points = _dashboard_load(client, url, project, concurrent=True)
            warm = [_dashboard_load(client, url, project, concurrent=True)[0] for _ in range(WARM_REPEAT)]
            sequential = [
                _dashboard_load(client, url, project, concurrent=False)[0] for _ in range(WARM_REPEAT)
            ]
            snapshots = client.get(f"{url}/api/projects/{project}/snapshots").json()
            snapshot = snapshots[len(snapshots) // 2]["id"]
            page = []
            for _ in range(WARM_REPEAT):
                begun = time.perf_counter()
                client.get(f"{url}/api/projects/{project}/{snapshot}/metadata").raise_for_status()
                client.get(f"{url}/api/projects/{project}/{snapshot}/data").raise_for_status()
                page.append(time.perf_counter() - begun)
            remote = RemoteWorkspace(url, url)
            remote_project = remote.ensure_project("remote", ["AAPL"], "regression")
            template = crafted_report("2024-07-10").snapshot
            writes = []
            for _ in range(REMOTE_WRITES):
                begun = time.perf_counter()
                remote.add_snapshot(remote_project, template)
                writes.append(time.perf_counter() - begun)
        rss = _rss_mb(process.pid)
    finally:
        stop_process(process)
    return {
        "ui_start_s": start_s,
        "panels": panels,
        "points": points,
        "dashboard_cold_s": cold_s,
        "dashboard_warm_median_s": statistics.median(warm),
        "dashboard_sequential_median_s": statistics.median(sequential),
        "snapshot_page_median_s": statistics.median(page),
        "remote_write_median_s": statistics.median(writes),
        "ui_rss_mb": rss,
    }


def _markdown(result: dict[str, Any]) -> str:
    real, synthetic, ui = result["real_reports"], result["workspace"], result["ui"]
    mb = 1024 * 1024
    lines = [
        "# Monitoring in evidently's workspace",
        "",
        f"Machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, evidently "
        f"{result['machine']['evidently']}. `make bench-monitoring` "
        "(`python benchmarks/monitoring_workspace.py --sessions N`).",
        "",
        f"## One report ({len(real['rows'])} real sessions, 8 monitored features, 19 scored predictions)",
        "",
        "| | stored snapshot (now) | self-contained HTML (before; now `mlops monitoring export`) |",
        "|---|---|---|",
        f"| size | {real['median_snapshot_bytes'] / 1024:.0f} kB "
        f"(max {real['max_snapshot_bytes'] / 1024:.0f} kB) "
        f"| {real['median_html_bytes'] / mb:.2f} MB |",
        f"| time to write it | {real['median_store_snapshot_s'] * 1000:.0f} ms (first of a team: "
        f"{real['first_store_snapshot_s']:.2f} s, creates the project and the reference dataset) "
        f"| {real['median_html_render_write_s'] * 1000:.0f} ms (render + write) |",
        f"| per year, 6 team-tickers x 252 sessions | {real['median_snapshot_bytes'] * 6 * 252 / mb:.0f} MB "
        f"| {real['median_html_bytes'] * 6 * 252 / 1024**3:.1f} GB |",
        "",
        "Computing a report (drift, performance, checks, the snapshot): "
        f"median {real['median_report_s']:.2f} s.",
        "",
        f"## A team dashboard over {result['sessions']} sessions x {len(TICKERS)} tickers",
        "",
        f"{synthetic['snapshots']} snapshots, {synthetic['workspace_bytes'] / mb:.0f} MB on disk, written in "
        f"{synthetic['write_s']:.0f} s ({synthetic['write_s'] / synthetic['snapshots'] * 1000:.0f} ms each).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| `evidently ui` start-up (loads every snapshot) | {ui['ui_start_s']:.1f} s |",
        f"| dashboard page data, first load ({ui['panels']} panels, {ui['points']} points, "
        f"{BROWSER_CONNECTIONS} requests at a time) | {ui['dashboard_cold_s']:.2f} s |",
        f"| dashboard page data, warm (median of {WARM_REPEAT}) | {ui['dashboard_warm_median_s']:.2f} s |",
        "| dashboard page data, one request at a time (median) "
        f"| {ui['dashboard_sequential_median_s']:.2f} s |",
        "| one snapshot's page data (metadata + widgets, median) "
        f"| {ui['snapshot_page_median_s'] * 1000:.0f} ms |",
        f"| a snapshot written through the remote workspace API (median of {REMOTE_WRITES}) "
        f"| {ui['remote_write_median_s'] * 1000:.0f} ms |",
        f"| `evidently ui` memory after the loads | {ui['ui_rss_mb']:.0f} MB |"
        if ui["ui_rss_mb"] is not None
        else "| `evidently ui` memory | n/a |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, default=250, help="sessions per ticker in the dashboard workspace"
    )
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    root = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    try:
        real = _real_reports(root / "real")
        synthetic = _synthetic_workspace(root / "dashboard", args.sessions)
        ui = _ui_measurements(root / "dashboard", synthetic["project"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "evidently": version("evidently"),
        },
        "sessions": args.sessions,
        "tickers": TICKERS,
        "dashboard_panels": len(build_dashboard("bench", TICKERS, "regression").panels),
        "real_reports": real,
        "workspace": {key: value for key, value in synthetic.items() if key != "project"},
        "ui": ui,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monitoring_workspace.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    markdown = _markdown(result)
    (RESULTS / "monitoring_workspace.md").write_text(markdown, encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    main()
