"""Processes that open a fresh home's Dagster instance at the same moment all get a working one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_pipeline.instance import open_instance

pytestmark = pytest.mark.integration  # several Python processes

OPEN_AND_COUNT_RUNS = """
import sys, time
from pathlib import Path
from mlops_pipeline.instance import open_instance
start = float(sys.argv[2])
while time.time() < start:
    pass
with open_instance(Path(sys.argv[1])) as instance:
    print(len(instance.get_runs()))
"""


def test_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path: Path) -> None:
    homes = [tmp_path / f"home-{attempt}" for attempt in range(3)]
    for home in homes:
        home.mkdir()
    for home in homes:
        start = time.time() + 4.0  # after every interpreter has imported dagster
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_COUNT_RUNS, str(home), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [process.communicate(timeout=120) for process in processes]
        for (out, err), process in zip(results, processes, strict=True):
            assert process.returncode == 0, err
            assert out.strip() == "0"
        with open_instance(home) as instance:
            assert instance.get_runs() == []
