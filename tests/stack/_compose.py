"""The compose stack as the README runs it, driven through ``docker-compose`` (v1, as Debian ships
it): the stack's files, the environment a user's .env would hold, health, the webserver's GraphQL
API, ``docker-compose exec`` and the memory of every container (``docker stats``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlops_pipeline.serving.launch_docker import COMPOSE_PROJECT_LABEL as PROJECT_LABEL

REPO_ROOT = Path(__file__).resolve().parents[2]
NETWORK = "mlops-platform"  # docker-compose.yml names it; serving containers join it
BUNDLES_VOLUME = "mlops-serving-bundles"
SERVING_LABEL = "mlops.role=serving"
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


@dataclass(frozen=True)
class Stack:
    """One compose project: its files and its variables (written to ``env_file``, as a user's .env;
    the host ports it publishes among them)."""

    project: str
    files: Sequence[Path]
    env_file: Path
    variables: dict[str, str]

    def __post_init__(self) -> None:
        self.env_file.write_text("".join(f"{name}={value}\n" for name, value in self.variables.items()))

    def _run(self, args: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        command = [
            "docker-compose", "--project-name", self.project, "--project-directory", str(REPO_ROOT),
            "--env-file", str(self.env_file),
        ]  # fmt: skip
        for file in self.files:
            command += ["--file", str(file)]
        return subprocess.run(
            [*command, *args], env=_host_env(), capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def compose(self, *args: str, timeout_s: float = 600) -> str:
        result = self._run(args, timeout_s)
        if result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def url(self, port_variable: str) -> str:
        return f"http://127.0.0.1:{self.variables[port_variable]}"

    def up(self, timeout_s: float = 900) -> float:
        """``up -d`` with the images already built; seconds until every service is healthy: the
        webserver has loaded the code location and MLflow answers."""
        started = time.monotonic()
        self.compose("up", "--detach", "--no-build", timeout_s=timeout_s)
        deadline = started + timeout_s
        problem = "not started"
        while time.monotonic() < deadline:
            problem = self._unhealthy()
            if problem is None:
                return time.monotonic() - started
            time.sleep(1)
        logs = self.compose("logs", "--tail", "40")
        raise AssertionError(f"the stack was not healthy after {timeout_s:.0f} s: {problem}\n{logs[-6000:]}")

    def _unhealthy(self) -> str | None:
        try:
            mlflow = httpx.get(f"{self.url('PORT_MLFLOW')}/health", timeout=5)
            if mlflow.status_code != 200:
                return f"MLflow answers {mlflow.status_code}"
            entries = self.graphql(
                """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
                       locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
            )["workspaceOrError"]["locationEntries"]
        except (httpx.HTTPError, AssertionError) as exc:
            return f"{type(exc).__name__}: {str(exc)[:300]}"
        loaded = [
            entry for entry in entries if entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        ]
        return None if loaded else f"code location not loaded: {entries}"

    def down(self) -> None:
        """``down``: containers and the network go, volumes stay."""
        self.compose("down", "--remove-orphans")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url('PORT_DAGSTER')}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise AssertionError(f"GraphQL {response.status_code}: {json.dumps(body)[:2000]}")
        return body["data"]

    def exec_python(self, service: str, code: str) -> str:
        """``code`` run by the service's Python, inside its container (on the compose network)."""
        return self.compose("exec", "-T", service, "python", "-c", code, timeout_s=120)

    def running(self) -> list[str]:
        """The stack's running containers, the serving containers it launched among them (they
        carry its project label)."""
        return subprocess.run(
            ["docker", "ps", "--quiet", "--filter", f"label={PROJECT_LABEL}={self.project}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip

    def foreign_owner(self) -> str | None:
        """The other compose project (or "no project") that holds the network or the bundles
        volume whose names docker-compose.yml fixes, if any: the stack cannot start beside it, and
        removing them would take them from it."""
        for kind, name in (("network", NETWORK), ("volume", BUNDLES_VOLUME)):
            found = subprocess.run(
                ["docker", kind, "inspect", "--format", f"{{{{index .Labels \"{PROJECT_LABEL}\"}}}}", name],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            owner = found.stdout.strip()
            if found.returncode == 0 and owner != self.project:
                return f"{kind} {name} of {owner or 'no compose project'}"
        return None

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of every running container of the stack, by name (``docker stats``)."""
        running = self.running()
        if not running:
            return {}
        listed = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *running],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        usage = {}
        for line in listed.splitlines():
            name, used = line.split()[0], line.split()[1]
            number, unit = re.fullmatch(r"([\d.]+)(\w+)", used).groups()  # type: ignore[union-attr]
            usage[name] = float(number) * _UNITS[unit] / 1024**2
        return usage

    def remove(self) -> None:
        """Everything the stack made, even after a failure: containers (its own and the serving
        containers it launched), volumes and its network. Images are kept."""
        serving = subprocess.run(
            ["docker", "ps", "--all", "--quiet", "--filter", f"label={PROJECT_LABEL}={self.project}",
             "--filter", f"label={SERVING_LABEL}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        if serving:
            subprocess.run(["docker", "rm", "--force", *serving], capture_output=True, check=False)
        self._run(["down", "--remove-orphans", "--volumes", "--timeout", "5"], timeout_s=300)
        for kind, name in (("network", NETWORK), ("volume", BUNDLES_VOLUME)):
            subprocess.run(["docker", kind, "rm", name], capture_output=True, check=False)


def _host_env() -> dict[str, str]:
    """The environment of ``docker-compose``: the shell's PATH and Docker settings, no variable of
    the calling process that the stack's files read (those come from the env file)."""
    return {name: value for name, value in os.environ.items() if name in {"PATH", "HOME", "DOCKER_HOST"}}
