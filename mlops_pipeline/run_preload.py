"""Imported once by the fork server of :class:`~mlops_pipeline.run_launcher.PreforkRunLauncher`.

It imports the libraries the code location and the asset bodies use: Dagster, pandas, Ludwig and
torch (training, serving), MLflow, DVC, ONNX Runtime, evidently (monitoring), about 16 s in all,
that no run then pays again. Then it forgets the platform's own modules, so that each run imports
the code as it is on disk now (about 0.4 s): code reloaded in the UI is what the next run executes.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

import dagster  # noqa: F401
import pandas  # noqa: F401

import mlops_pipeline.defs_builder  # noqa: F401  (everything the code location imports)

# Imported by asset bodies on first use; a failure here only costs that run the import time.
_IN_ASSET_BODIES = (
    "mlops_pipeline.torch_shim",  # before ludwig
    "ludwig.api",
    "onnxruntime",
    "mlflow",
    "dvc.repo",
    "evidently",
    "evidently.presets",
)
for _module in _IN_ASSET_BODIES:
    with contextlib.suppress(Exception):
        importlib.import_module(_module)

# The package itself (no code) and this module stay: the import of this module returns through them.
for _name in [name for name in sys.modules if name.startswith("mlops_pipeline.") and name != __name__]:
    del sys.modules[_name]
