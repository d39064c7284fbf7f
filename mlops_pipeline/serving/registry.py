"""The models one server process holds, loaded in the background so that probes answer at once.

``/ready`` is 503 while loading and stays 503 with the reason when any model fails to load; a
launcher never routes traffic to such a process.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_pipeline.serving.bundle import is_bundle
from mlops_pipeline.serving.inference import InferenceModel
from mlops_pipeline.serving.sources import ModelRef, ResolvedModel, fetch_bundle, resolve
from mlops_pipeline.serving.workers import WorkerGroup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    info: ResolvedModel
    model: InferenceModel

    def describe(self) -> dict[str, Any]:
        return {
            **self.info.describe(),
            "schema": self.model.schema.to_dict(),
            "predictor_runtime": self.model.predictor_runtime,
        }


class ModelRegistry:
    """The models of one process; with a ``group`` (several worker processes) it is ready only once
    every worker has loaded, and failed when any worker failed."""

    def __init__(
        self,
        refs: list[ModelRef],
        tracking_uri: str | None,
        download_dir: Path | None = None,
        group: WorkerGroup | None = None,
    ) -> None:
        if not refs:
            raise ValueError("at least one model is required")
        self._refs = refs
        self._tracking_uri = tracking_uri
        self._download_dir = download_dir
        self._group = group
        self.models: dict[str, ServedModel] = {}
        self._state = "loading"
        self._reason: str | None = None
        self._thread: threading.Thread | None = None

    def _status(self) -> tuple[str, str | None]:
        if self._state != "ready" or self._group is None:
            return self._state, self._reason
        group = self._group.status()
        return group.state, group.reason

    @property
    def state(self) -> str:
        """ "loading", "ready" or "failed"."""
        return self._status()[0]

    @property
    def reason(self) -> str | None:
        return self._status()[1]

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def start_loading(self) -> None:
        self._thread = threading.Thread(target=self.load, name="model-loader", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def load(self) -> None:
        """Load every model; on the first failure the registry stays not ready, with the reason."""
        if self._download_dir is not None:
            self._download_dir.mkdir(parents=True, exist_ok=True)
        loaded: dict[str, ServedModel] = {}
        # Downloads live only while they load: a loaded model holds its modules in memory.
        with tempfile.TemporaryDirectory(prefix="mlops-serving-models-", dir=self._download_dir) as folder:
            staging = Path(folder)
            for index, ref in enumerate(self._refs):
                try:
                    info = resolve(ref, self._tracking_uri)
                    if info.name in loaded:
                        raise ValueError(f"two models are named {info.name!r}; prefix one with NAME=")
                    if ref.path is not None and is_bundle(ref.path):  # a local (e.g. staged) bundle
                        bundle = ref.path
                    else:
                        bundle = fetch_bundle(info, self._tracking_uri, staging / f"{index}-{info.name}")
                    loaded[info.name] = ServedModel(info, InferenceModel(bundle))
                except Exception as exc:
                    self._state = "failed"
                    self._reason = f"{ref.raw}: {type(exc).__name__}: {exc}"
                    logger.error("model load failed: %s", self._reason)
                    if self._group is not None:
                        self._group.mark_loaded(self._state, self._reason)
                    return
                logger.info("loaded %s (version %s)", info.name, info.version)
        self.models = loaded
        gc.collect()
        gc.freeze()  # the models' many objects never go away: keep them out of every later collection
        self._state = "ready"
        if self._group is not None:
            self._group.mark_loaded(self._state, None)
