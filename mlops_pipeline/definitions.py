"""The code location Dagster loads (``dagster dev -m mlops_pipeline.definitions``).

Loading reads the settings, validates every team overlay (git-ref sources included) and fixes the
session partitions up to the last completed session; an invalid overlay fails the load with the
file and key named, so there is never a partial graph. A running code server keeps the sessions
it loaded until the location is reloaded. Loading only builds the Definitions: it writes no file,
sets no variable and imports neither ludwig, torch nor evidently. The embedded home (folders,
``dagster.yaml``, ``DAGSTER_HOME``) is prepared by the ``mlops`` commands that start Dagster
(``mlops ui``, ``mlops run``, ``mlops compete``).
"""

from __future__ import annotations

from mlops_pipeline.config.platform import load_platform
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.defs_builder import build_definitions

defs = build_definitions(load_platform(load_settings()))
