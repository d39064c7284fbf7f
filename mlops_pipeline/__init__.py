"""Dagster asset-graph MLOps platform for daily stock prediction and paper trading.

Importing the package switches the telemetry of the bundled tools off unless the user set the
variables explicitly (see :mod:`mlops_pipeline.runtime_env`). Heavy libraries (ludwig, torch,
evidently) are never imported here.
"""

from mlops_pipeline.runtime_env import apply_runtime_env

apply_runtime_env()
