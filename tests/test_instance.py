"""Processes that open a fresh home's Dagster instance at the same moment all get a working one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_pipeline.instance import open_instance

pytestmark = pytest.mark.integration  # several Python processes

PROCESSES = 4
ATTEMPTS = 3
# Imports Dagster once, says so, then for each home it is told (a line on stdin) opens the instance
# and prints how many runs it holds.
OPEN_WHEN_TOLD = """
import sys
from pathlib import Path
from mlops_pipeline.instance import open_instance
print("ready", flush=True)
for line in sys.stdin:
    with open_instance(Path(line.strip())) as instance:
        print(len(instance.get_runs()), flush=True)
"""


def test_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path: Path) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for process in processes:  # every one has imported Dagster: the openings start together
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for attempt in range(ATTEMPTS):  # each time a fresh home, opened by all at once
            home = tmp_path / f"home-{attempt}"
            home.mkdir()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"{home}\n")
                process.stdin.flush()
            for process in processes:
                assert process.stdout is not None
                opened = process.stdout.readline()
                if opened != "0\n":  # it failed to open: its error is on stderr
                    process.kill()
                    pytest.fail(f"attempt {attempt}: {opened!r}\n{process.communicate()[1][-3000:]}")
            with open_instance(home) as instance:
                assert instance.get_runs() == []
        for process in processes:
            _, err = process.communicate(timeout=120)  # end of input: each one exits
            assert process.returncode == 0, err
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
