"""Processes that open a fresh home's Dagster instance at the same moment all get a working one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_pipeline.instance import open_instance

pytestmark = pytest.mark.integration  # several Python processes

PROCESSES = 4
# Imports Dagster, says so, then opens the instance when told to (a line on stdin).
OPEN_WHEN_TOLD = """
import sys
from pathlib import Path
from mlops_pipeline.instance import open_instance
print("ready", flush=True)
sys.stdin.readline()
with open_instance(Path(sys.argv[1])) as instance:
    print(len(instance.get_runs()))
"""


def test_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path: Path) -> None:
    for attempt in range(3):
        home = tmp_path / f"home-{attempt}"
        home.mkdir()
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_WHEN_TOLD, str(home)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        for process in processes:  # every one has imported Dagster: the openings start together
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert out.strip() == "0"
        with open_instance(home) as instance:
            assert instance.get_runs() == []
