"""The daily loop before and after trading sessions became Dagster partitions, side by side.

Two designs run the same workload on the embedded default (sandbox market and broker, local
objects, SQLite MLflow, serving launcher ``process``) with 2 teams x 3 tickers (red and blue, both
the direction classifier on AAPL, MSFT and NVDA), each in a fresh interpreter and a fresh state
folder, each against its own sandbox server (a child process started from that design's code):

- **before**: the design at commit ``9885fb5`` (``orchestration.run_daily(settings, teams,
  as_of=day)`` and ``replay(settings, teams, start, end)``; each run moves the sandbox's clock),
  extracted with ``git archive`` into a temporary folder (or ``--old-tree PATH``) and run from there;
- **after**: the working tree (``session_runner.run_session(platform, day)`` and
  ``replay(platform, start, end)``); the sandbox's today is the last session of the replay, and
  every session is a partition.

Measured per design: the first session (trains every model), the next session (no retraining),
the same session materialized again, and a replay of ``--sessions`` sessions (default 20) that
crosses weekends, so the weekly retraining schedule fires in it. For "after" only, the time until
a team asset's Partitions tab in the Dagster UI (``mlops ui``, more than 1,000 session partitions)
shows the status of every session x ticker key, in headless Chromium. Writes
benchmarks/results/daily_loop.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
OLD_COMMIT = "9885fb5"
TICKERS = ["AAPL", "MSFT", "NVDA"]
FIRST_SESSION = date(2024, 3, 20)  # a Wednesday: the replay starts on the Friday after
SESSIONS_START = date(2020, 1, 2)  # more than 1,000 session partitions before the replay
GOALS = {"next_session_s": 10.0, "rerun_s": 5.0, "replay_20_s": 240.0}
TEAM_OVERLAY = """\
display_name: {display}
tickers: [{tickers}]

model:
  ludwig_config: direction_classifier.yaml

promotion:
  metric: directional_accuracy

strategy:
  name: direction_classifier
  params:
    min_confidence: 0.55
"""
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


# --- the parent: project copy, code trees, sandboxes, one interpreter per design ------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def _stop(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop_group(process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Stop a process started with ``start_new_session=True`` and whatever it started (``mlops ui``
    leaves ``dagster dev``'s webserver and daemon behind when it is killed)."""
    _stop(process, timeout_s)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(2)


def write_project(root: Path) -> Path:
    """teams/base.yaml and ludwig_configs/ of the repository, red and blue on the same 3 tickers."""
    project = root / "project"
    (project / "teams").mkdir(parents=True)
    shutil.copy2(REPO / "teams" / "base.yaml", project / "teams" / "base.yaml")
    shutil.copytree(REPO / "ludwig_configs", project / "ludwig_configs")
    for name in ("red", "blue"):
        overlay = TEAM_OVERLAY.format(display=name.capitalize(), tickers=", ".join(TICKERS))
        (project / "teams" / f"{name}.yaml").write_text(overlay, encoding="utf-8")
    return project


def old_tree(root: Path, commit: str) -> Path:
    """The repository at ``commit``, extracted with ``git archive`` (the repository is untouched)."""
    tree = root / f"code-{commit}"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def sessions(count: int) -> tuple[date, date, list[date]]:
    """The first session, the next one, and the ``count`` sessions replayed after them."""
    from mlops_pipeline.market.calendar import next_trading_day

    second = next_trading_day(FIRST_SESSION)
    days = [next_trading_day(second)]
    while len(days) < count:
        days.append(next_trading_day(days[-1]))
    return FIRST_SESSION, second, days


def design_env(tree: Path, home: Path, project: Path, sandbox_url: str | None) -> dict[str, str]:
    """A clean environment: no platform variables of the outer shell, this design's code first."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MLOPS_", "ALPHAVANTAGE_", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"))
    }
    env.update(
        PYTHONPATH=str(tree),
        MLOPS_PROJECT_DIR=str(project),
        MLOPS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        MLOPS_MARKET_DATA="sandbox",
        MLOPS_BROKER="sandbox",
        MLOPS_SERVING_LAUNCHER="process",
        MLOPS_SESSIONS_START=SESSIONS_START.isoformat(),
        MLOPS_SANDBOX_PORT=str(_free_port()),
    )
    if sandbox_url:
        env["MLOPS_SANDBOX_URL"] = sandbox_url
    return env


def start_sandbox(tree: Path, env: dict[str, str], today: date) -> tuple[subprocess.Popen, str]:
    """A sandbox server from this design's code, in its own process (it shares no GIL with the run)."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlops_pipeline.cli", "sandbox", "serve",
            "--host", "127.0.0.1", "--port", str(port), "--today", today.isoformat(),
        ],
        cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(f"{url}/_sandbox/health", 60, process)
    except RuntimeError:
        _stop(process)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"sandbox of {tree} did not start:\n{stderr[-2000:]}") from None
    return process, url


def run_design(name: str, tree: Path, root: Path, project: Path, days: dict[str, Any]) -> dict[str, Any]:
    """One design in a fresh interpreter and a fresh state folder, against its own sandbox."""
    home = root / name / ".mlops"
    env = design_env(tree, home, project, None)
    sandbox, url = start_sandbox(tree, env, date.fromisoformat(days["replay"][-1]))
    env["MLOPS_SANDBOX_URL"] = url
    request = {"name": name, "days": days}
    try:
        result = subprocess.run(
            [sys.executable, __file__, "--design", json.dumps(request)],
            cwd=tree, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        _stop(sandbox)
    for line in result.stderr.splitlines():
        if line.startswith(f"{name}: "):
            print(line, file=sys.stderr, flush=True)
    if result.returncode != 0:
        raise RuntimeError(f"design {name} failed:\n{result.stderr[-4000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["state"] = str(home)
    return row


def ui_page_load(tree: Path, root: Path, project: Path, days: dict[str, Any], team: str) -> dict[str, Any]:
    """Seconds until ``/assets/<team>/predictions`` shows its partitions, on the "after" state."""
    from playwright.sync_api import sync_playwright

    home = root / "after" / ".mlops"
    env = design_env(tree, home, project, None)
    sandbox, url = start_sandbox(tree, env, date.fromisoformat(days["replay"][-1]))
    env["MLOPS_SANDBOX_URL"] = url
    port = _free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlops_pipeline.cli", "ui", "--port", str(port)],
        cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        _wait_for_http(f"{base}/server_info", 240, ui)
        webserver_s = time.perf_counter() - started
        # The Partitions tab: "<n> Partitions Selected" and the status counts appear once the
        # webserver has computed every (session, ticker) key and its materialization status.
        page_url = f"{base}/assets/{team}/predictions?view=partitions"
        loads = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The first visit shows a dialog: dismiss it outside the timed loads.
            page.goto(f"{base}/assets")
            with contextlib.suppress(Exception):
                page.get_by_role("button", name="Skip").click(timeout=5000)
            for _ in range(2):  # cold (the code server computes the partitions first), then warm
                started = time.perf_counter()
                page.goto(page_url)
                page.get_by_text("Partitions Selected", exact=False).first.wait_for(timeout=180_000)
                page.get_by_text("Missing (", exact=False).first.wait_for(timeout=180_000)
                loads.append(time.perf_counter() - started)
            shown = re.search(r"([\d,]+) Partitions Selected", page.inner_text("body"))
            page.screenshot(path=str(root / "ui-predictions.png"), full_page=True)
            browser.close()
    finally:
        _stop_group(ui, timeout_s=60)
        _stop(sandbox)
    from mlops_pipeline.market.calendar import trading_days

    count = len(trading_days(SESSIONS_START, date.fromisoformat(days["replay"][-1])))
    return {
        "ui_webserver_start_s": round(webserver_s, 1),
        "ui_page_first_s": round(loads[0], 1),
        "ui_page_again_s": round(loads[1], 1),
        "ui_session_partitions": count,
        "ui_partitions_shown": int(shown.group(1).replace(",", "")) if shown else None,
        "ui_page": f"/assets/{team}/predictions?view=partitions",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="sessions in the replay (default 20)")
    parser.add_argument("--old-tree", type=Path, help=f"a checkout of {OLD_COMMIT} (default: git archive)")
    parser.add_argument("--designs", default="before,after", help="comma-separated: before, after")
    parser.add_argument("--skip-ui", action="store_true", help="do not time the Dagster UI page")
    args = parser.parse_args()
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    first, second, replayed = sessions(args.sessions)
    days = {
        "first": first.isoformat(),
        "next": second.isoformat(),
        "replay": [d.isoformat() for d in replayed],
    }
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-loop-"))
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        project = write_project(root)
        trees = {"before": args.old_tree or old_tree(root, OLD_COMMIT), "after": REPO}
        for name in [design.strip() for design in args.designs.split(",") if design.strip()]:
            print(f"{name}: running ({trees[name]})", file=sys.stderr, flush=True)
            rows.append(run_design(name, Path(trees[name]).resolve(), root, project, days))
            print(f"{name}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
        after = next((row for row in rows if row["design"] == "after"), None)
        if args.skip_ui:
            notes.append("UI page load not measured (--skip-ui).")
        elif after is None:
            notes.append("UI page load not measured: the after design did not run.")
        else:
            try:
                after.update(ui_page_load(REPO, root, project, days, "red"))
            except Exception as exc:
                notes.append(f"UI page load failed: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write(rows, days, notes)


def write(rows: list[dict[str, Any]], days: dict[str, Any], notes: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "old_commit": OLD_COMMIT,
        "teams": {"red": TICKERS, "blue": TICKERS},
        "model": "direction_classifier.yaml",
        "first_session": days["first"],
        "next_session": days["next"],
        "replay": [days["replay"][0], days["replay"][-1]],
        "replay_sessions": len(days["replay"]),
        "goals": GOALS,
        "notes": notes,
    }
    (RESULTS / "daily_loop.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    count = len(days["replay"])
    columns = [
        ("design", "design"),
        ("first_session_s", "first session (trains), s"),
        ("next_session_s", f"next session, s (goal <= {GOALS['next_session_s']:g})"),
        ("rerun_s", f"rerun of that session, s (goal <= {GOALS['rerun_s']:g})"),
        ("rerun_forced_s", "rerun, every step forced, s"),
        ("replay_s", f"{count}-session replay, s (goal for 20: <= {GOALS['replay_20_s']:g})"),
        ("replay_per_session_s", "replay, s per session"),
        ("replay_retrains", "models retrained in the replay"),
        ("failures", "failed runs"),
        ("ui_page_first_s", "UI Partitions tab of red/predictions, s (first / again)"),
    ]
    lines = [
        "# The daily loop: before (9885fb5) and after sessions became partitions",
        "",
        f"Goals: new session <= {GOALS['next_session_s']:g} s, rerun <= {GOALS['rerun_s']:g} s, "
        f"20-session replay <= {GOALS['replay_20_s']:g} s.",
        "",
        f"Embedded default (sandbox market and broker, local objects, SQLite MLflow, serving launcher "
        f"`process`); teams red and blue, direction classifier on {', '.join(TICKERS)}. First session "
        f"{days['first']}, next {days['next']}, replay {days['replay'][0]} to {days['replay'][-1]} "
        f"({count} sessions). {meta['machine']}, {meta['cpus']} CPUs. `make bench-loop`.",
        "",
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = []
        for key, _ in columns:
            if key == "ui_page_first_s" and key in row:
                cells.append(
                    f"{row[key]} / {row['ui_page_again_s']} ({row['ui_session_partitions']} sessions)"
                )
            else:
                cells.append("" if row.get(key) is None else str(row[key]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {note}" for note in notes]
    (RESULTS / "daily_loop.md").write_text("\n".join(lines).rstrip() + "\n")
    print("\n".join(lines))


# --- the child: one design, in the interpreter started with its code tree -------------------------


def _retrains(teams: list[str]) -> int:
    """Model materializations that trained (metadata ``retrained``), every team together."""
    import dagster as dg

    count = 0
    with dg.DagsterInstance.get() as instance:
        for team in teams:
            records = instance.fetch_materializations(dg.AssetKey([team, "model"]), limit=10_000).records
            for record in records:
                materialization = record.asset_materialization
                retrained = materialization.metadata.get("retrained") if materialization else None
                count += bool(retrained is not None and retrained.value)
    return count


def _stop_deployments(home: Path) -> None:
    from mlops_pipeline.serving.deployment import stop_deployment
    from mlops_pipeline.serving.launch import Deployment

    for record in home.glob("**/teams/*/serving/deployment.json"):
        with contextlib.suppress(Exception):
            stop_deployment(Deployment.from_json(record.read_text()))


def _before(days: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """``run(day)`` and ``replay(start, end)`` of the design at 9885fb5."""
    from mlops_pipeline.orchestration import replay, run_daily

    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.settings import load_settings
    from mlops_pipeline.config.teams import load_teams

    settings = load_settings()
    ensure_home(settings)
    teams = load_teams(settings.teams_path, settings.ludwig_configs_path)
    return (
        lambda day: run_daily(settings, teams, as_of=day),
        lambda start, end: replay(settings, teams, start, end),
        list(teams),
    )


def _after(days: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """``run(day)`` and ``replay(start, end)`` of the sessions-as-partitions design (a replay: one
    asset backfill per session, its runs launched by the instance)."""
    import dagster as dg

    from mlops_pipeline.config.home import ensure_home
    from mlops_pipeline.config.platform import load_platform
    from mlops_pipeline.config.settings import load_settings
    from mlops_pipeline.replay import replay
    from mlops_pipeline.session_runner import run_session

    settings = load_settings()
    ensure_home(settings)
    platform_ = load_platform(settings)
    last = date.fromisoformat(days["replay"][-1])
    if platform_.last_session != last:
        raise RuntimeError(f"the platform's last session is {platform_.last_session}, expected {last}")
    return (
        lambda day, force=False: run_session(platform_, day, force=force),
        lambda start, end: _backfills(replay, dg, platform_, start, end),
        list(platform_.teams),
    )


def _backfills(replay: Any, dg: Any, platform_: Any, start: date, end: date) -> list[Any]:
    """The replay's sessions, each with ``ok`` as the reports of the other designs have it."""
    with dg.DagsterInstance.get() as instance:
        return list(replay(instance, platform_, start, end, list(platform_.teams)).sessions)


def _progress(design: str, what: str, seconds: float) -> None:
    print(f"{design}: {what} {seconds:.1f} s", file=sys.stderr, flush=True)


def _timed(call: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - started


def run_child(request: dict[str, Any]) -> dict[str, Any]:
    import mlops_pipeline

    name, days = request["name"], request["days"]
    started = time.perf_counter()
    run, replay, teams = (_before if name == "before" else _after)(days)
    setup_s = time.perf_counter() - started
    first, second = date.fromisoformat(days["first"]), date.fromisoformat(days["next"])
    replayed = [date.fromisoformat(day) for day in days["replay"]]
    home = Path(os.environ["MLOPS_HOME"])
    try:
        first_report, first_s = _timed(run, first)
        _progress(name, "first session", first_s)
        next_report, next_s = _timed(run, second)
        _progress(name, "next session", next_s)
        rerun_report, rerun_s = _timed(run, second)
        _progress(name, "rerun", rerun_s)
        forced_s = None
        if name == "after":  # it skips up-to-date steps; before re-ran every step anyway
            _, forced_s = _timed(run, second, True)
            _progress(name, "forced rerun", forced_s)
        trained_before = _retrains(teams)
        replay_reports, replay_s = _timed(replay, replayed[0], replayed[-1])
        _progress(name, f"{len(replayed)}-session replay", replay_s)
        replay_retrains = _retrains(teams) - trained_before
    finally:
        _stop_deployments(home)
    # A replay of the design before is session reports of in-process runs; one of now is the
    # sessions' backfills (their runs launched by the instance, their failures counted per partition).
    backfills = [report for report in replay_reports if hasattr(report, "backfill_id")]
    reports = [first_report, next_report, rerun_report, *(r for r in replay_reports if r not in backfills)]
    return {
        "design": name,
        "code": str(Path(mlops_pipeline.__file__).parents[1]),
        "setup_s": round(setup_s, 1),
        "first_session_s": round(first_s, 1),
        "first_session_ok": f"{first_report.total_count - first_report.failed_count}/"
        f"{first_report.total_count}",
        "next_session_s": round(next_s, 1),
        "rerun_s": round(rerun_s, 1),
        "rerun_forced_s": round(forced_s, 1) if forced_s is not None else None,
        "replay_s": round(replay_s, 1),
        "replay_sessions": len(replay_reports),
        "replay_per_session_s": round(replay_s / max(len(replay_reports), 1), 1),
        "replay_runs_s": [
            round(sum(run.seconds for run in report.runs), 1)
            for report in replay_reports
            if report not in backfills
        ],
        "replay_retrains": replay_retrains,
        "runs_per_session": next_report.total_count,
        "failures": sum(report.failed_count for report in reports) + sum(b.failed for b in backfills),
        "waiting": sum(report.waiting_count for report in reports),
        "failed_runs": sorted(
            {
                f"{run.job}[{run.partition}]: {(run.note or '')[:200]}"
                for r in reports
                for run in r.runs
                if run.status == "failure"
            }
            | {
                f"{run.assets}[{run.partition}]: {run.error[:200]}"
                for b in backfills
                for run in b.failed_runs
            }
        )[:10],
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--design":
        print(json.dumps(run_child(json.loads(sys.argv[2]))))
    else:
        main()
