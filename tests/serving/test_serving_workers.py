"""Several worker processes on one port: readiness waits for all, metrics add up, SIGTERM ends all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from _serving_models import ROW_FEATURES
from starlette.testclient import TestClient

from mlops_pipeline.serving.app import ServerConfig, create_app
from mlops_pipeline.serving.cli import GROUP_DIR_PREFIX, remove_folders_of_dead_servers
from mlops_pipeline.serving.inference import InferenceModel
from mlops_pipeline.serving.launch import free_port
from mlops_pipeline.serving.registry import ModelRegistry
from mlops_pipeline.serving.schema import validate_columns
from mlops_pipeline.serving.sources import parse_model_ref
from mlops_pipeline.serving.workers import WorkerGroup

pytestmark = pytest.mark.integration  # needs the trained models (shared by the whole session)


def _other_worker(group_dir: Path, state: str, reason: str | None) -> None:
    """Another process of the group finishing its load as ``state``."""
    code = (
        "import sys; from pathlib import Path; from mlops_pipeline.serving.workers import WorkerGroup; "
        "WorkerGroup(Path(sys.argv[1]), 2).mark_loaded(sys.argv[2], sys.argv[3] or None)"
    )
    subprocess.run([sys.executable, "-c", code, str(group_dir), state, reason or ""], check=True, timeout=30)


def _client(bundles, group_dir: Path) -> TestClient:
    registry = ModelRegistry(
        [parse_model_ref(f"x={bundles['return']}")], None, group=WorkerGroup(group_dir, 2)
    )
    registry.load()
    return TestClient(create_app(registry, ServerConfig(), load_on_startup=False))


def test_ready_only_once_every_worker_has_loaded(bundles, tmp_path) -> None:
    with _client(bundles, tmp_path) as client:
        waiting = client.get("/ready")
        assert waiting.status_code == 503
        assert waiting.json() == {"status": "loading", "reason": "1 of 2 workers have loaded the models"}
        assert client.get("/ping").status_code == 503
        assert client.get("/v2/health/ready").status_code == 503
        assert client.post("/predict", data=ROW_FEATURES).status_code == 503

        _other_worker(tmp_path, "ready", None)
        assert client.get("/ready").json() == {"status": "ready", "models": ["x"]}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.post("/predict", data=ROW_FEATURES).status_code == 200


def test_a_worker_that_failed_to_load_keeps_the_server_unready_with_its_reason(bundles, tmp_path) -> None:
    _other_worker(tmp_path, "failed", "x: BundleError: no weights")
    with _client(bundles, tmp_path) as client:
        failed = client.get("/ready")
        assert failed.status_code == 503
        assert failed.json() == {"status": "failed", "reason": "x: BundleError: no weights"}
        assert "no weights" in client.get("/v2/health/ready").json()["reason"]
        assert "no weights" in client.get("/ping").text


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _workers_of(pid: int) -> list[int]:
    """The server's workers: forked by its fork server, which imported torch and the app once."""
    servers = [
        child
        for child in _children(pid)
        if b"multiprocessing.forkserver" in (command := Path(f"/proc/{child}/cmdline").read_bytes())
        and b"'torch'" in command
    ]
    return [worker for server in servers for worker in _children(server)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_until(condition, what: str, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _answers(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None


def _metric(text: str, line_start: str) -> int:
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def _start_two_workers(bundle: Path, temp_dir: Path | None = None) -> tuple[subprocess.Popen, str, list[int]]:
    """A server of two workers for ``bundle``, once ready: the supervisor, its URL and the workers."""
    port = free_port()
    command = [sys.executable, "-m", "mlops_pipeline.serving.cli", "--port", str(port), "--workers", "2"]
    env = {**os.environ, "TMPDIR": str(temp_dir)} if temp_dir is not None else None
    server = subprocess.Popen([*command, "--model", f"x={bundle}"], stdin=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _answers(f"{base}/ready") == 200, "the server to be ready")
    except BaseException:
        server.kill()
        raise
    return server, base, _workers_of(server.pid)


def test_two_workers_share_the_port_and_the_metrics_and_sigterm_stops_them_all(bundles) -> None:
    server, base, workers = _start_two_workers(bundles["return"])
    try:
        assert len(workers) == 2

        model = InferenceModel(bundles["return"])
        columns = {name: [value] for name, value in ROW_FEATURES.items()}
        expected = model.predict(validate_columns(model.schema, columns, 1, allow_extra=True))

        def predict_and_tell_the_worker(_: int) -> tuple[float, float]:
            with httpx.Client(base_url=base, timeout=10) as client:  # a new connection every time
                prediction = client.post("/predict", data=ROW_FEATURES).json()
                return prediction["target_next_return_predictions"], client.get("/info").json()["started_at"]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(predict_and_tell_the_worker, range(80)))
        predictions = [prediction for prediction, _ in answers]
        assert predictions == pytest.approx(list(expected["target_next_return_predictions"]) * 80, abs=1e-5)
        assert len({started_at for _, started_at in answers}) == 2  # each worker answered some

        def predictions_counted() -> int:
            text = httpx.get(f"{base}/metrics", timeout=5).text
            return _metric(text, 'mlops_serving_requests_total{endpoint="predict",model="x",status="200"}')

        _wait_until(lambda: predictions_counted() == 80, "every worker's counts in /metrics", 10)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    assert not [worker for worker in workers if _alive(worker)]


def test_workers_exit_when_their_supervisor_is_killed(bundles, tmp_path: Path) -> None:
    server, base, workers = _start_two_workers(bundles["return"], temp_dir=tmp_path)
    try:
        assert len(workers) == 2
        server.kill()  # kill -9: the supervisor gets no chance to stop its workers
        server.wait(30)
        _wait_until(lambda: not any(_alive(worker) for worker in workers), "the workers to exit", 30)
        assert _answers(f"{base}/ready") is None  # nothing holds the port
        # Its workers' folder stays behind, until the next server starts and removes it.
        left = list(tmp_path.glob(f"{GROUP_DIR_PREFIX}{server.pid}-*"))
        assert len(left) == 1
        remove_folders_of_dead_servers(tmp_path)
        assert not left[0].exists()
    finally:
        for worker in workers:
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)


def test_a_workers_folder_is_removed_only_once_its_server_is_gone(tmp_path: Path) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead, running = ended.pid, os.getpid()
    for pid in (dead, running):
        (tmp_path / f"{GROUP_DIR_PREFIX}{pid}-abc123").mkdir()
        (tmp_path / f"{GROUP_DIR_PREFIX}{pid}-abc123" / "state-1.json").write_text("{}")
    others = [f"{GROUP_DIR_PREFIX}x7k2_q9z", f"{GROUP_DIR_PREFIX}\u00b2-abc123"]  # no pid: left alone
    for name in others:
        (tmp_path / name).mkdir()
    remove_folders_of_dead_servers(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"{GROUP_DIR_PREFIX}{running}-abc123", *others]
    )
