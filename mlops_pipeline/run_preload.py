"""Imported once by the fork server of :class:`~mlops_pipeline.run_launcher.PreforkRunLauncher`.

It imports the libraries the code location and the asset bodies use: Dagster and its SQLite
storage (the embedded instance's, with the empty run database each run's is copied from), pandas,
the NYSE calendar (and builds it: exchange-calendars keeps it for the same arguments), Ludwig and
torch (training, serving), MLflow and its SQL store, DVC, ONNX Runtime, evidently (monitoring),
the broker client, about 20 s in all, that no run then pays again (they were 3 to 4 s of every
run's start). Then it forgets the platform's own modules but the instance's storage, so that each
run imports the code as it is on disk now (about 0.4 s): code reloaded in the UI is what the next run
executes.
"""

from __future__ import annotations

import os

# Before torch, NumPy and OpenMP load, which read it once: a run computes on one thread, as the
# instance runs six at a time side by side. A run's own threads only fight its siblings for the
# cores (three training runs of a 2-core machine, two threads each): three sessions with a weekly
# retraining took 14 to 26 % longer with the libraries' defaults. A value set by the user is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib
import importlib
import sys
from datetime import date

import dagster  # noqa: F401
import pandas  # noqa: F401

import mlops_pipeline.defs_builder  # noqa: F401  (everything the code location imports)
from mlops_pipeline.instance_storage import empty_run_database
from mlops_pipeline.ludwig_api import warm_ludwig_schema
from mlops_pipeline.market.calendar import is_trading_day

# Imported on first use by a run (its instance, its code location, its asset bodies); a failure
# here only costs that run the import time.
_ON_FIRST_USE = (
    "dagster._core.storage.sqlite_storage",  # the run's instance
    "dagster_postgres",
    "exchange_calendars",
    "mlops_pipeline.torch_shim",  # before ludwig
    "ludwig.api",
    "onnxruntime",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "dvc.repo",
    "evidently",
    "evidently.presets",
    "alpaca.data",
    "alpaca.trading",
    "pyarrow.dataset",
    "upath",
)
for _module in _ON_FIRST_USE:
    with contextlib.suppress(Exception):
        importlib.import_module(_module)
with contextlib.suppress(Exception):
    is_trading_day(date.today())  # builds the calendar, which exchange-calendars then keeps
# The instance's storage, like Dagster's own, is the instance's code, not the code location's: it
# stays loaded, with the empty run database every run's own is copied from.
with contextlib.suppress(Exception):
    empty_run_database()
# Ludwig's schema, generated and checked here once: a training or a bundle export no longer spends
# its first 4 s on it in every run.
with contextlib.suppress(Exception):
    warm_ludwig_schema()

# The package itself (no code), this module and the instance's storage stay: the import of this
# module returns through them.
_KEPT = {__name__, "mlops_pipeline.instance_storage"}
for _name in [name for name in sys.modules if name.startswith("mlops_pipeline.") and name not in _KEPT]:
    del sys.modules[_name]
