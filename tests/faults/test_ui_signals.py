"""`mlops ui` stops every process it started (the Dagster webserver, daemon, code server and its
gRPC server, the evidently UI, the sandbox) within 10 s of SIGTERM or SIGINT to its own PID, SIGINT
even when it was started as a shell's background job is, with SIGINT ignored."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from _net import free_port, wait_for_http
from _process_faults import (
    MlopsProcess,
    alive,
    platform_env,
    wait_until,
    write_fault_team,
)
from _processes import cmdline, descendants

pytestmark = pytest.mark.integration


def _code_server_up(ui: MlopsProcess) -> bool:
    return any(b"grpc" in cmdline(pid) for pid in descendants(ui.pid))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_mlops_ui_stops_all_its_children_on_a_signal(project: Path, tmp_path: Path, signum: int) -> None:
    write_fault_team(project)
    port, evidently_port = free_port(), free_port()
    ui = MlopsProcess(
        ["ui", "--port", str(port), "--evidently-port", str(evidently_port)],
        platform_env(tmp_path / ".mlops", project, free_port()),
        project,
        tmp_path / "ui.log",
        sigint_ignored=signum == signal.SIGINT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout_s=180)
        wait_for_http(f"http://127.0.0.1:{evidently_port}/api/version", timeout_s=120)
        wait_until("the code server's gRPC server", lambda: _code_server_up(ui), ui, timeout_s=180)
        children = descendants(ui.pid)
        commands = {pid: cmdline(pid).replace(b"\0", b" ").decode(errors="replace") for pid in children}
        assert any("dagster" in line and "dev" in line for line in commands.values()), commands
        assert any("evidently" in line for line in commands.values()), commands
        assert any("sandbox" in line for line in commands.values()), commands

        sent = time.monotonic()
        ui.process.send_signal(signum)
        code = ui.process.wait(timeout=10)
        deadline = sent + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = {pid: commands[pid] for pid in children if alive(pid)}
        print(
            f"mlops ui: {len(children)} children stopped in {time.monotonic() - sent:.1f} s after {signum!r}"
        )
        assert not survivors, f"alive 10 s after {signum!r}: {survivors}"
        assert code in (0, 130, -signum), ui.output()
    finally:
        if ui.process.poll() is None:
            ui.kill_tree()
