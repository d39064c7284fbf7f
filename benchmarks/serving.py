"""Serving benchmark: our model server vs ``ludwig serve`` vs ``mlflow models serve``, one run.

Usage: ``python benchmarks/serving.py [--seconds 5] [--out benchmarks/results]`` (``make bench-serving``).

The same small Ludwig model (the platform's ``return_mlp.yaml`` trained for a few epochs on
synthetic features), the same payloads and the same machine for every server, one server at a time:

- cold start: process (or container) start until the server answers its readiness probe;
- single row, concurrency 1 and 8: keep-alive HTTP clients in threads for a fixed time;
- a batch of 1,000 rows: client round trip for all, and server time for ours (``Server-Timing``).

Ours is measured twice, with ``ludwig serve``'s form protocol and with MLflow's ``/invocations``.
If a Docker daemon answers, the serving image is built (or reused) and the container's cold start
and the image size are measured too. Writes ``serving.json`` and ``serving.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlops_pipeline.serving.launch import free_port  # noqa: E402

BATCH_ROWS = 1000


@dataclass
class Payload:
    method: str
    path: str
    body: bytes
    content_type: str


def train_model(workdir: Path, epochs: int) -> tuple[Path, list[str], pd.DataFrame]:
    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel

    config = yaml.safe_load((REPO / "ludwig_configs" / "return_mlp.yaml").read_text())
    config["trainer"].update(epochs=epochs)
    config.pop("preprocessing", None)
    inputs = [feature["name"] for feature in config["input_features"]]
    rng = np.random.default_rng(0)
    data = pd.DataFrame({name: rng.normal(0, 1, 600) for name in inputs})
    data["target_next_return"] = 0.01 * data[inputs[0]] + rng.normal(0, 0.01, 600)
    model = LudwigModel(config, logging_level=logging.ERROR, backend="local")
    model.train(dataset=data, output_directory=str(workdir / "results"), skip_save_processed_input=True)
    model.save(str(workdir / "ludwig_model"))
    return workdir / "ludwig_model", inputs, data[inputs]


def mlflow_model(ludwig_dir: Path, dest: Path) -> Path:
    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel
    from ludwig.contribs.mlflow.model import save_model

    save_model(LudwigModel.load(str(ludwig_dir), backend="local"), str(dest))
    return dest


def request(conn: http.client.HTTPConnection, payload: Payload) -> tuple[float, float | None]:
    start = time.perf_counter()
    conn.request(
        payload.method, payload.path, body=payload.body, headers={"Content-Type": payload.content_type}
    )
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"{payload.path}: HTTP {response.status} {body[:300]!r}")
    timing = response.getheader("server-timing")
    server_ms = float(timing.split("dur=")[1]) if timing and "dur=" in timing else None
    return elapsed * 1000, server_ms


def load(port: int, payload: Payload, threads: int, seconds: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        request(conn, payload)  # warm the connection
        while time.perf_counter() < deadline:
            latencies[index].append(request(conn, payload)[0])
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    duration = time.perf_counter() - started
    flat = np.array([value for values in latencies for value in values])
    return {
        "requests": len(flat),
        "req_per_s": round(len(flat) / duration, 1),
        "p50_ms": round(float(np.percentile(flat, 50)), 3),
        "p95_ms": round(float(np.percentile(flat, 95)), 3),
        "p99_ms": round(float(np.percentile(flat, 99)), 3),
    }


def batch(port: int, payload: Payload, repeats: int = 15) -> dict[str, float | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    request(conn, payload)
    results = [request(conn, payload) for _ in range(repeats)]
    conn.close()
    server = [value for _, value in results if value is not None]
    return {
        "client_p50_ms": round(statistics.median(value for value, _ in results), 2),
        "server_p50_ms": round(statistics.median(server), 2) if server else None,
    }


def wait_ready(port: int, probe: str, process: subprocess.Popen, timeout_s: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", probe)
            if conn.getresponse().status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"not ready after {timeout_s} s")


def form(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def payloads(inputs: list[str], frame: pd.DataFrame) -> dict[str, dict[str, Payload]]:
    row = {name: repr(float(frame.iloc[0][name])) for name in inputs}
    rows = frame.sample(BATCH_ROWS, replace=True, random_state=1).reset_index(drop=True)
    split = rows.to_json(orient="split", index=False)
    urlencoded = "application/x-www-form-urlencoded"
    ludwig = {
        "single": Payload("POST", "/predict", form(row), urlencoded),
        "batch": Payload("POST", "/batch_predict", form({"dataset": split}), urlencoded),
    }
    single_split = json.dumps(
        {"dataframe_split": {"columns": inputs, "data": [[float(v) for v in row.values()]]}}
    )
    invocations = {
        "single": Payload("POST", "/invocations", single_split.encode(), "application/json"),
        "batch": Payload(
            "POST",
            "/invocations",
            json.dumps({"dataframe_split": json.loads(split)}).encode(),
            "application/json",
        ),
    }
    return {"ludwig": ludwig, "invocations": invocations}


# (label in the table, server, protocol of the payloads)
SERVERS = [
    ("ours (ludwig form API)", "ours", "ludwig"),
    ("ours (/invocations)", "ours", "invocations"),
    ("ludwig serve", "ludwig", "ludwig"),
    ("mlflow models serve", "mlflow", "invocations"),
]


def server_command(
    name: str, port: int, bundle: Path, ludwig_dir: Path, pyfunc: Path
) -> tuple[list[str], str]:
    """The command line that starts ``name`` on ``port`` and its readiness probe."""
    python, where = sys.executable, ["--host", "127.0.0.1", "--port", str(port)]
    if name == "ours":
        return [python, "-m", "mlops_pipeline.serving.cli", "--model", f"bench={bundle}", *where], "/ready"
    if name == "ludwig":  # the wrapper entry point: `ludwig serve` with the torch import shim
        return [
            python,
            "-m",
            "mlops_pipeline.ludwig_cli",
            "serve",
            "--model_path",
            str(ludwig_dir),
            *where,
        ], "/"
    serve = [python, "-m", "mlflow", "models", "serve", "-m", str(pyfunc), "--env-manager", "local"]
    return [*serve, *where, "--workers", "1"], "/ping"


def run_server(
    name: str,
    command: list[str],
    port: int,
    probe: str,
    env: dict[str, str],
    protocol_payloads,
    seconds: float,
) -> dict:
    safe = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{safe}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        cold = wait_ready(port, probe, process)
        print(f"{name}: ready after {cold:.2f} s", flush=True)
        results = {"cold_start_s": round(cold, 2)}
        results["single_c1"] = load(port, protocol_payloads["single"], 1, seconds)
        results["single_c8"] = load(port, protocol_payloads["single"], 8, seconds)
        results["batch_1000"] = batch(port, protocol_payloads["batch"])
        print(f"{name}: {json.dumps(results)}", flush=True)
        return results
    except Exception as exc:
        raise RuntimeError(f"{name} failed ({exc}); log: {log.name}") from exc
    finally:
        process.terminate()
        process.wait(timeout=30)


def docker_numbers(bundle: Path) -> dict:
    from mlops_pipeline.serving.image import ensure_image
    from mlops_pipeline.serving.launch_docker import docker_client

    client, why_not = docker_client()
    if client is None:
        return {"skipped": why_not}
    base = os.environ.get("MLOPS_SERVING_BASE_IMAGE", "mlops-base:local")
    tag = ensure_image(client, Path(tempfile.gettempdir()) / "mlops-serving-image-cache", base, print)
    size = client.images.get(tag).attrs["Size"]
    starts = []
    for _ in range(3):
        port = free_port()
        start = time.perf_counter()
        container = client.containers.run(
            tag,
            command=["--host", "127.0.0.1", "--port", str(port), "--model", "bench=/models/bench"],
            detach=True,
            network_mode="host",
            volumes={str(bundle): {"bind": "/models/bench", "mode": "ro"}},
        )
        try:
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.request("GET", "/ready")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                container.reload()
                if container.status == "exited" or time.perf_counter() - start > 120:
                    raise RuntimeError(container.logs(tail=30).decode())
                time.sleep(0.02)
            starts.append(time.perf_counter() - start)
        finally:
            container.remove(force=True)
    return {
        "image": tag,
        "base_image": base,
        "image_size_mb": round(size / 1e6),
        "cold_start_s": [round(s, 2) for s in starts],
    }


def markdown(results: dict) -> str:
    servers = results["servers"]
    header = [
        "server",
        "cold start (s)",
        "1 row, c=1: p50 ms",
        "c=1 req/s",
        "1 row, c=8: req/s",
        "c=8 p50 ms",
        "1,000 rows: client p50 ms",
        "server ms",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, numbers in servers.items():
        server_ms = numbers["batch_1000"]["server_p50_ms"]
        lines.append(
            f"| {name} | {numbers['cold_start_s']} | {numbers['single_c1']['p50_ms']} | "
            f"{numbers['single_c1']['req_per_s']} | {numbers['single_c8']['req_per_s']} | "
            f"{numbers['single_c8']['p50_ms']} | {numbers['batch_1000']['client_p50_ms']} | "
            f"{server_ms if server_ms is not None else 'n/a'} |"
        )
    ours, ludwig = servers.get("ours (ludwig form API)"), servers.get("ludwig serve")
    if ours and ludwig:
        ratio = ours["single_c8"]["req_per_s"] / ludwig["single_c8"]["req_per_s"]
        lines.append(f"\nReq/s at concurrency 8, ours / ludwig serve: **{ratio:.1f}x**.")
    docker = results.get("docker", {})
    if "image_size_mb" in docker:
        lines.append(
            f"\nServing image `{docker['image']}` (base `{docker['base_image']}`): "
            f"{docker['image_size_mb']} MB; container start to ready: {docker['cold_start_s']} s."
        )
    elif docker:
        lines.append(f"\nDocker: {docker.get('skipped')}")
    lines.append(f"\nMachine: {results['machine']}; {results['seconds']} s per load test.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load test")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--skip-docker", action="store_true")
    args = parser.parse_args()

    from mlops_pipeline.serving.bundle import export_bundle

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        ludwig_dir, inputs, frame = train_model(work, args.epochs)
        bundle = export_bundle(ludwig_dir, work / "bundle")
        pyfunc = mlflow_model(ludwig_dir, work / "mlflow_model")
        shim = work / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text("import mlops_pipeline.torch_shim  # noqa: F401\n")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(shim), str(REPO)]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        requests = payloads(inputs, frame)
        servers = {}
        for label, name, protocol in SERVERS:
            port = free_port()
            command, probe = server_command(name, port, bundle, ludwig_dir, pyfunc)
            servers[label] = run_server(label, command, port, probe, env, requests[protocol], args.seconds)
        results = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "seconds": args.seconds,
            "model": "ludwig_configs/return_mlp.yaml, 8 number inputs",
            "servers": servers,
            "docker": {} if args.skip_docker else docker_numbers(bundle),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "serving.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
