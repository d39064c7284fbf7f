"""Imported once by the fork server of :class:`~mlops_pipeline.run_launcher.PreforkRunLauncher`.

It imports the libraries the code location and the asset bodies use: Dagster and its SQLite storage
(the embedded instance's, with the empty run database each run's is copied from), pandas, the NYSE
calendar (and reads its table), Ludwig and torch (training, serving), MLflow and its SQL store,
DVC, ONNX and ONNX Runtime, evidently (monitoring), the broker client, about 20 s in all, that no
run then pays again (they were 3 to 4 s of every run's start), and the platform's own modules; and
it rehearses evidently's reports once, so that what they import and build on first use is there
too. A run keeps those while the platform's sources are unchanged since
(:func:`forget_edited_platform`); after an edit it imports the code as it is on disk now, so that
code reloaded in the UI is what the next run executes.
"""

from __future__ import annotations

import os

# Before torch, NumPy and OpenMP load, which read it once: a run computes on one thread, as the
# instance runs six at a time side by side. A run's own threads only fight its siblings for the
# cores (three training runs of a 2-core machine, two threads each): three sessions with a weekly
# retraining took 14 to 26 % longer with the libraries' defaults. A value set by the user is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib
import gc
import importlib
from datetime import date
from pathlib import Path

import dagster  # noqa: F401
import pandas  # noqa: F401

import mlops_pipeline
from mlops_pipeline.code_freshness import forget_if_edited, source_stamp

_PACKAGE_DIR = Path(mlops_pipeline.__file__).parent
_IMPORTED = source_stamp(_PACKAGE_DIR)  # before the imports: an edit made meanwhile counts as one

# Everything the code location imports, and what executes a run.
for _module in ("mlops_pipeline.defs_builder", "mlops_pipeline.run_worker"):
    importlib.import_module(_module)
_calendar = importlib.import_module("mlops_pipeline.market.calendar")
_instance_storage = importlib.import_module("mlops_pipeline.instance_storage")
_ludwig_api = importlib.import_module("mlops_pipeline.ludwig_api")

# Imported on first use by a run (its instance, its code location, its asset bodies); a failure
# here only costs that run the import time.
_ON_FIRST_USE = (
    "dagster._core.storage.sqlite_storage",  # the run's instance
    "dagster_postgres",
    "onnxruntime",
    "onnx",  # a champion's bundle export (0.12 s of its first export in a process)
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "dvc.repo",
    "evidently",
    "evidently.presets",
    "alpaca.data",
    "alpaca.trading",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "upath.implementations.local",  # upath imports its implementations on first use
    "httpcore",  # httpx imports its transport on the first client
    "matplotlib.backends.backend_agg",  # the leaderboard's charts
    "netrc",  # requests reads it for every request's credentials
    "pandas.core.methods.to_dict",
    "pandas.core.reshape.reshape",
    # what Dagster imports to load a code location and execute a run in process
    "dagster._core.definitions.external_asset",
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.execution.plan.active",
    "dagster._core.executor.in_process",
    "dagster._core.instance.factory",
    "dagster._core.system_config.composite_descent",
    "dagster._core.utility_ops",
    "dagster._core.workspace.autodiscovery",
    # MLflow's stores import these when made
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.utils.search_logged_model_utils",
    # the asset bodies' own modules, imported inside them
    "mlops_pipeline.monitoring.session",
    "mlops_pipeline.serving.session_deployment",
    "mlops_pipeline.serving.session_prediction",
)
# Ludwig as every process imports it: the torch shim first, its metadata parsed with libyaml.
with contextlib.suppress(Exception):
    _ludwig_api.import_ludwig_api()
for _module in _ON_FIRST_USE:
    with contextlib.suppress(Exception):
        importlib.import_module(_module)
with contextlib.suppress(Exception):
    _calendar.is_trading_day(date.today())  # reads the calendar's table (or builds it), kept for the process
# The empty run database every run's own is copied from.
with contextlib.suppress(Exception):
    _instance_storage.empty_run_database()
# Ludwig's schema, generated and checked here once: a training or a bundle export no longer spends
# its first 4 s on it in every run.
with contextlib.suppress(Exception):
    _ludwig_api.warm_ludwig_schema()
# evidently's reports, rehearsed once on synthetic data: what they import and build on first use
# (plotly's validators, evidently's metric classes) is there for every run. With the modules above,
# a monitoring run's CPU went from 2.6 to 2.0 s.
with contextlib.suppress(Exception):
    importlib.import_module("mlops_pipeline.monitoring.evidently_report").rehearse_reports()
# Everything above lives as long as the fork server and every run forked from it: frozen, it is out
# of the collector's reach, so a run's collections traverse only the run's own objects, and never
# write to (and so copy) the memory it shares with the server. Unfrozen, a run's full collection
# traversed about 1.1 million preloaded objects: 1.2 to 1.4 s of CPU in each training run.
gc.collect()
gc.freeze()

# What a run that forgets the platform keeps: the instance's storage (like Dagster's own, the
# instance's code, not the code location's) and the modules executing the run.
_KEPT = frozenset(
    {
        __name__,
        "mlops_pipeline.instance_storage",
        "mlops_pipeline.run_worker",
        "mlops_pipeline.code_freshness",
    }
)


def forget_edited_platform() -> bool:
    """In a run forked from the fork server: forget the platform's modules if a source file changed
    since they were imported, so that the run imports the code on disk (whether it did)."""
    return forget_if_edited(mlops_pipeline.__name__, _PACKAGE_DIR, _IMPORTED, _KEPT)
