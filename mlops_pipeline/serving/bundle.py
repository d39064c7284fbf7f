"""Inference bundles: a Ludwig model exported to TorchScript (and its forward pass to ONNX, see
``onnx_predictor``), plus the schema the server validates.

A bundle is a folder with Ludwig's three TorchScript modules (preprocessor, predictor,
postprocessor), ``predictor.onnx`` when the forward pass exports faithfully, and ``serving.json``
(the schema, and which predictor runs). Exporting needs ludwig; loading a bundle needs only torch
and onnxruntime.
For registered models the bundle is stored next to the model as the run artifact ``inference``,
so the serving container downloads it and never imports ludwig.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops_pipeline.model_registry import MODEL_ARTIFACT, MlflowRegistry
from mlops_pipeline.serving.onnx_predictor import (
    ONNX_FILE,
    ONNX_RUNTIME,
    PredictorChoice,
    export_onnx_predictor,
)
from mlops_pipeline.serving.schema import ModelSchema

logger = logging.getLogger(__name__)

MANIFEST = "serving.json"
RUN_ARTIFACT = "inference"
MODULE_FILES = {
    "preprocessor": "inference_preprocessor.pt",
    "predictor": "inference_predictor-cpu.pt",
    "postprocessor": "inference_postprocessor.pt",
}


class BundleError(RuntimeError):
    """A model cannot be exported or its bundle is incomplete; the message names the path."""


def is_bundle(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def find_ludwig_dir(root: Path) -> Path:
    """The folder under ``root`` that holds a saved Ludwig model (``model_hyperparameters.json``)."""
    if (root / "model_hyperparameters.json").is_file():
        return root
    found = sorted(path.parent for path in root.rglob("model_hyperparameters.json"))
    if not found:
        raise BundleError(f"no Ludwig model (model_hyperparameters.json) under {root}")
    return found[0]


@dataclass(frozen=True)
class BundleManifest:
    """A bundle's ``serving.json``, checked against the files beside it."""

    schema: ModelSchema
    predictor: PredictorChoice


def read_manifest(bundle_dir: Path) -> BundleManifest:
    path = bundle_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        schema = ModelSchema.from_dict(manifest["schema"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"unreadable bundle manifest {path}: {exc}") from exc
    try:
        predictor = PredictorChoice.from_manifest(manifest)
    except ValueError as exc:
        raise BundleError(f"bundle manifest {path}: {exc}") from exc
    files = list(MODULE_FILES.values())
    if predictor.runtime == ONNX_RUNTIME:
        files.append(ONNX_FILE)
    missing = [name for name in files if not (bundle_dir / name).is_file()]
    if missing:
        raise BundleError(f"bundle {bundle_dir} lacks {missing}")
    return BundleManifest(schema, predictor)


def export_bundle(ludwig_dir: Path, dest: Path) -> Path:
    """Export the Ludwig model in ``ludwig_dir`` to a bundle in ``dest`` (replaced atomically): its
    TorchScript modules, and the ONNX graph where it equals them (else the manifest says why not)."""
    from ludwig.globals import LUDWIG_VERSION

    from mlops_pipeline.ludwig_api import import_ludwig_api  # the serving image has neither

    LudwigModel = import_ludwig_api().LudwigModel  # noqa: N806

    schema = ModelSchema.from_ludwig_dir(ludwig_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        model = LudwigModel.load(str(ludwig_dir), backend="local")
        model.save_torchscript(str(staging), device="cpu")
        torchscript = {role: staging / filename for role, filename in MODULE_FILES.items()}
        predictor = export_onnx_predictor(
            model.model, model.training_set_metadata, schema, torchscript, staging / ONNX_FILE
        )
        if predictor.reason is not None:
            logger.warning("%s serves with TorchScript: %s", ludwig_dir, predictor.reason)
        manifest = {
            "schema": schema.to_dict(),
            "ludwig_version": LUDWIG_VERSION,
            "predictor": predictor.to_dict(),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        staging.chmod(0o755)  # mkdtemp makes it private; a server may run as another user
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def ensure_version_bundle(tracking_uri: str, registered_name: str, version: str) -> bool:
    """:func:`ensure_run_bundle` for the run behind version ``version`` of ``registered_name``."""
    run_id = MlflowRegistry(tracking_uri).version(registered_name, version).run_id
    return ensure_run_bundle(tracking_uri, run_id)


def ensure_run_bundle(tracking_uri: str, run_id: str) -> bool:
    """Export the run's Ludwig model and log it as the run artifact ``inference``, unless present.

    Returns whether a bundle was exported (False: the run already had one, nothing was done).
    """
    registry = MlflowRegistry(tracking_uri)
    if f"{RUN_ARTIFACT}/{MANIFEST}" in registry.artifact_paths(run_id, RUN_ARTIFACT):
        return False
    with tempfile.TemporaryDirectory(prefix="mlops-export-") as tmp:
        downloaded = registry.download(run_id, MODEL_ARTIFACT, Path(tmp))
        bundle = export_bundle(find_ludwig_dir(downloaded), Path(tmp) / RUN_ARTIFACT)
        registry.call(
            f"log {RUN_ARTIFACT} of run {run_id}",
            lambda: registry.client.log_artifacts(run_id, str(bundle), RUN_ARTIFACT),
        )
    return True
