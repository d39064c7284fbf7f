"""The code location Dagster loads (``dagster dev -m mlops_pipeline.definitions``).

Loading reads the settings and validates every team overlay; an invalid overlay fails the load
with the file and key named, so there is never a partial graph. ludwig, torch and evidently are
not imported here.
"""

from __future__ import annotations

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.defs_builder import build_definitions

_settings = load_settings()
ensure_home(_settings)
defs = build_definitions(_settings)
