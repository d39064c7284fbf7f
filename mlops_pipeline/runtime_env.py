"""Process-wide environment defaults: telemetry off, hubs offline.

Each value is a default only: a variable the user already exported wins.
"""

from __future__ import annotations

import os

TELEMETRY_DEFAULTS: dict[str, str] = {
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def apply_runtime_env() -> None:
    """Set every telemetry/offline default that is not already set."""
    for name, value in TELEMETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
