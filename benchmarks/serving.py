"""Serving benchmark: our model server next to a hello-world app on the same ASGI stack,
``ludwig serve`` and ``mlflow models serve``, in one run, for every shipped model config.

Usage: ``python benchmarks/serving.py [--seconds 3] [--runs 3] [--out benchmarks/results]``
(``make bench-serving``).

Each model of ``ludwig_configs/`` (return MLP, timeseries CNN, direction classifier) is trained for
a few epochs on synthetic features of its inputs. For each model and each server, one server at a
time on 127.0.0.1:

- cold start: process start until the server answers its readiness probe;
- one row per request under ``wrk`` (a native load generator; installed with apt-get when missing)
  at 1, 8 and 64 keep-alive connections: requests per second, p50 and p99 latency of the run of
  median throughput out of ``--runs`` (each on new connections: how the kernel spreads them over a
  server's worker processes varies from run to run);
- a batch of 1,000 rows: client round trip, and server time for ours (``Server-Timing``).

The hello-world app (Starlette on uvicorn with uvloop and httptools, as ours, reading the body and
answering a small JSON document) is the ceiling of the HTTP stack on this machine. Ours and
``mlflow models serve`` get MLflow's ``/invocations`` JSON, ``ludwig serve`` its form protocol. If a
Docker daemon answers, the serving image is built (or reused) and its size and a container's start
to ready are measured too. Writes ``serving.json`` and ``serving.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
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
CONNECTIONS = (1, 8, 64)
MODELS = {  # label -> shipped config
    "return MLP": "return_mlp.yaml",
    "timeseries CNN": "return_window_timeseries.yaml",
    "direction classifier": "direction_classifier.yaml",
}
SERVERS = ("ours", "hello-world", "ludwig serve", "mlflow models serve")
HELLO_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def invocations(request):
    await request.body()
    return JSONResponse({"predictions": [{"hello": "world"}]})

async def ping(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning")
"""
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
local body = io.open("{body}", "rb")
wrk.body = body:read("*all")
body:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"non_2xx": %d, "socket_errors": %d}}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Payload:
    path: str
    body: bytes
    content_type: str


def synthetic_frame(config: dict, rows: int, seed: int) -> pd.DataFrame:
    """Random values for every input of ``config`` and a learnable target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame()
    for feature in config["input_features"]:
        if feature["type"] == "timeseries":
            windows = rng.normal(0, 0.01, (rows, 10))
            frame[feature["name"]] = [" ".join(f"{value:.6f}" for value in window) for window in windows]
        else:
            frame[feature["name"]] = rng.normal(0, 1, rows)
    signal = rng.normal(0, 0.01, rows)
    for feature in config["output_features"]:
        frame[feature["name"]] = signal > 0 if feature["type"] == "binary" else signal
    return frame


def train_model(config_file: str, workdir: Path, epochs: int) -> tuple[Path, list[str], pd.DataFrame]:
    import mlops_pipeline.torch_shim  # noqa: F401

    # isort: split
    from ludwig.api import LudwigModel

    config = yaml.safe_load((REPO / "ludwig_configs" / config_file).read_text())
    config["trainer"].update(epochs=epochs)
    config["trainer"].pop("early_stop", None)
    config.pop("preprocessing", None)
    inputs = [feature["name"] for feature in config["input_features"]]
    data = synthetic_frame(config, 600, seed=0)
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
    conn.request("POST", payload.path, body=payload.body, headers={"Content-Type": payload.content_type})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"{payload.path}: HTTP {response.status} {body[:300]!r}")
    timing = response.getheader("server-timing")
    server_ms = float(timing.split("dur=")[1]) if timing and "dur=" in timing else None
    return elapsed * 1000, server_ms


def ensure_wrk() -> str:
    """The ``wrk`` binary, installed from the Debian package when missing (needs root and apt)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get install wrk)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    for command in (install, ["apt-get", "update", "-qq"], install):
        if shutil.which("wrk"):
            break
        subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and apt-get could not install it: apt-get install wrk")
    return found


def wrk(binary: str, port: int, script: Path, path: str, connections: int, seconds: int) -> dict:
    command = [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    result = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {result.stdout[-500:]} {result.stderr[-500:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "req_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "requests": raw["requests"],
        "failed": raw["non_2xx"] + raw["socket_errors"],
    }


def median_run(runs: list[dict]) -> dict:
    """The run of median throughput, with every run's req/s: each run opens new connections, and
    how the kernel spreads them over the server's worker processes varies from run to run."""
    ranked = sorted(runs, key=lambda run: run["req_per_s"])
    return {
        **ranked[len(ranked) // 2],
        "failed": sum(run["failed"] for run in runs),
        "runs_req_per_s": [run["req_per_s"] for run in runs],
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
    """Per protocol, the one-row and the 1,000-row request of the same values."""
    first = frame.iloc[:1]
    rows = frame.sample(BATCH_ROWS, replace=True, random_state=1).reset_index(drop=True)

    def split(part: pd.DataFrame) -> dict:
        return json.loads(part.to_json(orient="split", index=False))

    def invocations(part: pd.DataFrame) -> Payload:
        body = json.dumps({"dataframe_split": split(part)}).encode()
        return Payload("/invocations", body, "application/json")

    urlencoded = "application/x-www-form-urlencoded"
    row = {name: str(value) for name, value in first.iloc[0].items()}
    return {
        "invocations": {"single": invocations(first), "batch": invocations(rows)},
        "ludwig": {
            "single": Payload("/predict", form(row), urlencoded),
            "batch": Payload(
                "/batch_predict", form({"dataset": rows.to_json(orient="split", index=False)}), urlencoded
            ),
        },
    }


def server_command(
    name: str, port: int, bundle: Path, ludwig_dir: Path, pyfunc: Path
) -> tuple[list[str], str, str]:
    """The command line that starts ``name`` on ``port``, its readiness probe and its protocol."""
    python, where = sys.executable, ["--host", "127.0.0.1", "--port", str(port)]
    if name == "ours":
        command = [python, "-m", "mlops_pipeline.serving.cli", "--model", f"bench={bundle}", *where]
        return command, "/ready", "invocations"
    if name == "hello-world":
        return [python, "-c", HELLO_APP, str(port)], "/ping", "invocations"
    if name == "ludwig serve":  # the wrapper entry point: `ludwig serve` with the torch import shim
        command = [
            python,
            "-m",
            "mlops_pipeline.ludwig_cli",
            "serve",
            "--model_path",
            str(ludwig_dir),
            *where,
        ]
        return command, "/", "ludwig"
    serve = [python, "-m", "mlflow", "models", "serve", "-m", str(pyfunc), "--env-manager", "local"]
    return [*serve, *where, "--workers", "1"], "/ping", "invocations"


def run_server(
    name: str,
    command: list[str],
    port: int,
    probe: str,
    env: dict[str, str],
    scripts: dict,
    requests: dict,
    binary: str,
    seconds: float,
    runs: int,
) -> dict:
    safe = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{safe}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        results: dict = {"cold_start_s": round(wait_ready(port, probe, process), 2)}
        for _ in range(8):  # warm up, each time on a new connection so that every worker process gets some
            request(http.client.HTTPConnection("127.0.0.1", port, timeout=30), requests["single"])
        for connections in CONNECTIONS:
            results[f"c{connections}"] = median_run(
                [
                    wrk(binary, port, scripts["single"], requests["single"].path, connections, seconds)
                    for _ in range(runs)
                ]
            )
        if name != "hello-world":
            results["batch_1000"] = batch(port, requests["batch"])
        print(f"  {name}: {json.dumps(results)}", flush=True)
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


def goals(models: dict) -> list[str]:
    """The issue's goals, each with the measured numbers and whether it is met."""
    lines = []
    for label, servers in models.items():
        ours, hello, ludwig = servers["ours"], servers["hello-world"], servers.get("ludwig serve")
        ratios = {c: ours[f"c{c}"]["req_per_s"] / hello[f"c{c}"]["req_per_s"] for c in (8, 64)}
        server_ms = ours["batch_1000"]["server_p50_ms"]
        checks = [
            (
                f"ours / hello-world req/s at 8, 64 connections: {ratios[8]:.2f}, {ratios[64]:.2f} (>= 0.5)",
                min(ratios.values()) >= 0.5,
            ),
            (f"p50 at 1 connection: {ours['c1']['p50_ms']} ms (<= 1 ms)", ours["c1"]["p50_ms"] <= 1.0),
            (f"1,000 rows, server time: {server_ms} ms (<= 20 ms)", server_ms <= 20),
        ]
        if ludwig:
            ratio = ours["c8"]["req_per_s"] / ludwig["c8"]["req_per_s"]
            checks.append((f"ours / ludwig serve req/s at 8 connections: {ratio:.1f}x (>= 10x)", ratio >= 10))
        lines += [f"- {label}: {text}: **{'met' if ok else 'NOT met'}**" for text, ok in checks]
    return lines


def markdown(results: dict) -> str:
    header = ["model", "server", "cold start s"]
    for c in CONNECTIONS:
        header += [f"c={c} req/s", f"c={c} p50 ms", f"c={c} p99 ms"]
    header += ["1,000 rows: client ms", "server ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, servers in results["models"].items():
        for name, numbers in servers.items():
            cells = [label, name, str(numbers["cold_start_s"])]
            for c in CONNECTIONS:
                cell = numbers[f"c{c}"]
                cells += [str(cell["req_per_s"]), str(cell["p50_ms"]), str(cell["p99_ms"])]
            batch_numbers = numbers.get("batch_1000", {})
            cells += [
                str(batch_numbers.get("client_p50_ms", "")),
                str(batch_numbers.get("server_p50_ms") or ""),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Goals:", *goals(results["models"])]
    docker = results.get("docker", {})
    if "image_size_mb" in docker:
        lines.append(
            f"\nServing image `{docker['image']}` (base `{docker['base_image']}`): "
            f"{docker['image_size_mb']} MB; container start to ready: {docker['cold_start_s']} s."
        )
    elif docker:
        lines.append(f"\nDocker: {docker.get('skipped')}")
    lines.append(f"\nMachine: {results['machine']}; {results['note']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="duration of each wrk run")
    parser.add_argument(
        "--runs", type=int, default=3, choices=range(1, 11), help="wrk runs per cell; the median is reported"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--servers", nargs="*", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()

    from mlops_pipeline.serving.bundle import export_bundle

    binary = ensure_wrk()
    load_before = os.getloadavg()[0]
    models: dict[str, dict] = {}
    docker: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        shim = Path(tmp) / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text("import mlops_pipeline.torch_shim  # noqa: F401\n")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(shim), str(REPO)]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        for label in args.models:
            work = Path(tmp) / re.sub(r"\W+", "-", label)
            work.mkdir()
            print(f"{label}: training {MODELS[label]}", flush=True)
            ludwig_dir, inputs, frame = train_model(MODELS[label], work, args.epochs)
            bundle = export_bundle(ludwig_dir, work / "bundle")
            pyfunc = mlflow_model(ludwig_dir, work / "mlflow_model")
            requests = payloads(inputs, frame)
            scripts = {}
            for protocol, pair in requests.items():
                body = work / f"{protocol}-single.body"
                body.write_bytes(pair["single"].body)
                scripts[protocol] = work / f"{protocol}.lua"
                scripts[protocol].write_text(
                    WRK_SCRIPT.format(content_type=pair["single"].content_type, body=body)
                )
            models[label] = {}
            for name in args.servers:
                port = free_port()
                command, probe, protocol = server_command(name, port, bundle, ludwig_dir, pyfunc)
                models[label][name] = run_server(
                    name,
                    command,
                    port,
                    probe,
                    env,
                    {"single": scripts[protocol]},
                    requests[protocol],
                    binary,
                    args.seconds,
                    args.runs,
                )
            if not docker and not args.skip_docker:
                docker = docker_numbers(bundle)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "note": (
            f"ours with its default workers (one per usable core: {len(os.sched_getaffinity(0))}), the "
            "others one process each; "
            f"wrk -t1, the median of {args.runs} runs of {args.seconds} s per cell (each on new "
            "connections), one server at a time; the load generator runs on the "
            "same cores, which other work shared during the run (1-minute load average "
            f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), so the numbers are noisy."
        ),
        "seconds": args.seconds,
        "runs": args.runs,
        "models": models,
        "docker": docker,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "serving.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
