"""The embedded state folder (``.mlops/`` by default): Dagster instance, objects, MLflow, DVC remote."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mlops_pipeline.config.settings import PlatformSettings

# Pools used by assets; every pool gets this limit unless the instance config says otherwise.
ALPHAVANTAGE_POOL = "alphavantage"
# Seconds after a run ends before the daemon frees the pool slots a dead worker still holds.
FREE_SLOTS_AFTER_RUN_END_S = 30


def broker_account_pool(team: str) -> str:
    """The pool of the steps that act on ``team``'s broker account (its orders and reconciliation):
    one at a time across every run, however launched, so that two runs of a session never trade
    at once."""
    return f"broker_account_{team}"


# Runs at once on the embedded instance. A steady session of two teams x three tickers has up to six
# runs at once (three tickers' predictions, then each team's orders and reconciliation): with four,
# the trading runs on the session's critical path queued behind the predictions (a replayed session
# took 21 s with four, 17-19 s with six, on 2 cores). More only thrash a small machine's cores and
# SQLite.
EMBEDDED_MAX_CONCURRENT_RUNS = 6


def _monitoring() -> dict:
    return {
        "enabled": True,
        "start_timeout_seconds": 180,
        "poll_interval_seconds": 30,
        "free_slots_after_run_end_seconds": FREE_SLOTS_AFTER_RUN_END_S,
    }


def embedded_dagster_yaml(
    dagster_home: Path, max_concurrent_runs: int = EMBEDDED_MAX_CONCURRENT_RUNS
) -> dict:
    """The embedded instance: SQLite storage and local compute logs (Dagster's, in the same files,
    quicker and with pool slots claimed under a file lock: ``mlops_pipeline.instance_storage``),
    telemetry off, runs queued and launched six at a time, each forked from a warm process
    (``mlops_pipeline.run_launcher``), one step at a time per pool across all runs (the AlphaVantage
    request stream, each team's broker account; a run whose first step waits for its pool is
    launched anyway and its step waits, so the other tickers' steps of a session do not queue
    behind one ticker's whole run), and run monitoring (a run whose process died is marked failed
    instead of staying STARTED, and its pool slots are freed)."""
    return {
        "telemetry": {"enabled": False},
        "storage": {
            "custom": {
                "module": "mlops_pipeline.instance_storage",
                "class": "EmbeddedSqliteStorage",
                "config": {"base_dir": str(dagster_home.resolve())},
            }
        },
        "compute_logs": {
            "module": "mlops_pipeline.instance_storage",
            "class": "EmbeddedComputeLogManager",
            "config": {"base_dir": str(dagster_home.resolve() / "storage")},
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": 1},
        },
        "run_launcher": {"module": "mlops_pipeline.run_launcher", "class": "PreforkRunLauncher"},
        "concurrency": {
            "runs": {"max_concurrent_runs": max_concurrent_runs},
            "pools": {"default_limit": 1, "op_granularity_run_buffer": max_concurrent_runs},
        },
        "run_monitoring": _monitoring(),
    }


def _with_plain_sqlite(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in ("storage", "compute_logs")}


def _storage_dir(config: object) -> str | None:
    """The folder an embedded ``dagster.yaml`` names for its storage, if it names one."""
    try:
        return config["storage"]["custom"]["config"]["base_dir"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def _written_by_the_platform(config: object) -> bool:
    """Whether ``config`` is a ``dagster.yaml`` this or an earlier version wrote (a moved home's too)."""
    if config in _EARLIER_EMBEDDED:
        return True
    storage_dir = _storage_dir(config)
    return isinstance(storage_dir, str) and config == embedded_dagster_yaml(Path(storage_dir))


# What earlier versions wrote: such a file is replaced by the current one, a user's own is kept.
_EARLIER_EMBEDDED = (
    {
        "telemetry": {"enabled": False},
        "concurrency": {"pools": {"default_limit": 1}},
        "run_monitoring": _monitoring(),
    },
    {
        "telemetry": {"enabled": False},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": 1},
        },
        "run_launcher": {"module": "mlops_pipeline.run_launcher", "class": "PreforkRunLauncher"},
        "concurrency": {"runs": {"max_concurrent_runs": 4}, "pools": {"default_limit": 1}},
        "run_monitoring": _monitoring(),
    },
    _with_plain_sqlite(embedded_dagster_yaml(Path("."), max_concurrent_runs=4)),
    _with_plain_sqlite(embedded_dagster_yaml(Path("."))),
)


def ensure_home(settings: PlatformSettings) -> None:
    """Create the embedded folders and the Dagster instance config; point DAGSTER_HOME at it.

    Idempotent. An existing ``dagster.yaml`` written by a user (e.g. a Postgres one) is kept; one an
    earlier version of the platform wrote is brought up to date.
    """
    for folder in (settings.home_dir, settings.dagster_home_path, settings.home_dir / "mlflow"):
        folder.mkdir(parents=True, exist_ok=True)
    if settings.storage == "local":
        settings.storage_root_path.mkdir(parents=True, exist_ok=True)
    if settings.dvc_remote_url and "://" not in settings.dvc_remote_url:
        Path(settings.dvc_remote_url).mkdir(parents=True, exist_ok=True)
    instance_yaml = settings.dagster_home_path / "dagster.yaml"
    current = embedded_dagster_yaml(settings.dagster_home_path)
    written = yaml.safe_load(instance_yaml.read_text(encoding="utf-8")) if instance_yaml.exists() else None
    if written is None or (written != current and _written_by_the_platform(written)):
        instance_yaml.write_text(yaml.safe_dump(current, sort_keys=False), encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home_path)
