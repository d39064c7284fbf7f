"""Command-line start-up: ``mlops`` next to ``dagster`` and ``mlflow``, in one run.

Each command runs as a fresh process (as a user types it), ``REPEAT`` times after one warm-up; the
table shows the median and the fastest wall time. Goal: every ``mlops ... --help`` within 0.6 x
``dagster --help``.

Writes benchmarks/results/cli_startup.json and .md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent
REPEAT = 7
GOAL_RATIO = 0.6
COMMANDS: list[tuple[str, list[str]]] = [
    ("dagster --help", ["dagster", "--help"]),
    ("mlflow --help", ["mlflow", "--help"]),
    ("mlops --help", ["mlops", "--help"]),
    ("mlops run --help", ["mlops", "run", "--help"]),
    ("mlops compete --help", ["mlops", "compete", "--help"]),
    ("mlops sandbox serve --help", ["mlops", "sandbox", "serve", "--help"]),
    ("mlops version", ["mlops", "version"]),
]


def _seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / argv[0]), *argv[1:]], check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def main() -> None:
    rows = []
    for label, argv in COMMANDS:
        _seconds(argv)  # warm the file cache
        times = [_seconds(argv) for _ in range(REPEAT)]
        rows.append({"command": label, "median_s": statistics.median(times), "best_s": min(times)})
    reference = next(row["median_s"] for row in rows if row["command"] == "dagster --help")
    for row in rows:
        row["vs_dagster_help"] = row["median_s"] / reference
        if row["command"].startswith("mlops"):
            row["meets_goal"] = row["vs_dagster_help"] <= GOAL_RATIO
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "repeat": REPEAT,
        "goal": f"mlops commands <= {GOAL_RATIO} x dagster --help (median)",
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_startup.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Command-line start-up",
        "",
        f"Median and best of {REPEAT} fresh processes each; goal: {result['goal']}.",
        "",
        "| command | median s | best s | x dagster --help | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        goal = {True: "met", False: "missed"}.get(row.get("meets_goal"), "")
        lines.append(
            f"| `{row['command']}` | {row['median_s']:.3f} | {row['best_s']:.3f} | "
            f"{row['vs_dagster_help']:.2f} | {goal} |"
        )
    (RESULTS / "cli_startup.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
