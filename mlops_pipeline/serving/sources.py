"""Where a served model comes from: a registry reference, an MLflow run id or a local folder.

Accepted ``--model`` values (optionally prefixed ``NAME=`` to choose the served name):

- ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: a registered model;
- a 32-character MLflow run id: that run's ``model`` artifact;
- a local folder holding an inference bundle or a saved Ludwig model.

Registered models and runs are served from their ``inference`` run artifact (see ``bundle``); a
run without one is exported on the spot, which needs ludwig. A deployment copies each model's bundle
into a local folder first (:func:`stage_bundle`) with ``origin.json`` beside it, so a server given
that folder needs no MLflow and still reports the version, run and aliases it serves.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.model_registry import MODEL_ARTIFACT, MlflowRegistry, TrackingError, registered_model_name
from mlops_pipeline.serving.bundle import (
    RUN_ARTIFACT,
    BundleError,
    ensure_run_bundle,
    export_bundle,
    find_ludwig_dir,
    is_bundle,
)

_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ORIGIN_FILE = "origin.json"  # a staged bundle's registry identity (see ``stage_bundle``)


class ModelSourceError(ValueError):
    """A model reference is malformed or cannot be resolved; the message names it."""


@dataclass(frozen=True)
class ModelRef:
    raw: str
    name: str | None  # explicit or registered name; None: derived when resolved
    registered_name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None
    path: Path | None = None


@dataclass(frozen=True)
class ResolvedModel:
    """A reference pinned to what will be served."""

    name: str
    source: str
    version: str | None = None
    run_id: str | None = None
    aliases: list[str] = field(default_factory=list)
    registered_name: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "registered_name": self.registered_name,
            "version": self.version,
            "aliases": self.aliases,
            "run_id": self.run_id,
            "source": self.source,
        }


def parse_model_ref(text: str) -> ModelRef:
    raw = text.strip()
    name: str | None = None
    if "=" in raw and not raw.startswith("models:/"):
        name, raw = (part.strip() for part in raw.split("=", 1))
        if not _NAME.match(name):
            raise ModelSourceError(f"invalid model name {name!r} in {text!r} (letters, digits, . _ -)")
    match = _REGISTRY.match(raw)
    if match:
        return ModelRef(
            raw, name or match["name"], match["name"], alias=match["alias"], version=match["version"]
        )
    if raw.startswith("models:/"):
        raise ModelSourceError(f"{text!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    if _RUN_ID.match(raw):
        return ModelRef(raw, name, run_id=raw)
    path = Path(raw).expanduser()
    if path.is_dir():
        return ModelRef(raw, name or path.resolve().name, path=path.resolve())
    raise ModelSourceError(
        f"{text!r} is neither models:/<name>@<alias>, models:/<name>/<version>, a run id nor a folder"
    )


def resolve(ref: ModelRef, tracking_uri: str | None) -> ResolvedModel:
    """Pin ``ref``: the registry version an alias points to now, the run behind a version."""
    if ref.path is not None:
        assert ref.name is not None
        origin = ref.path / ORIGIN_FILE
        if origin.is_file():  # a staged bundle: served under its given name, reported as registered
            return ResolvedModel(**{**json.loads(origin.read_text()), "name": ref.name})
        return ResolvedModel(ref.name, str(ref.path))
    registry = MlflowRegistry(tracking_uri)
    try:
        if ref.registered_name is not None:
            if ref.alias is not None:
                version = registry.alias_version(ref.registered_name, ref.alias)
                if version is None:
                    raise ModelSourceError(
                        f"cannot resolve {ref.raw!r} at {tracking_uri}: "
                        f"no alias {ref.alias!r} on registered model {ref.registered_name!r}"
                    )
            else:
                version = registry.version(ref.registered_name, str(ref.version))
            aliases = sorted(
                alias
                for alias, number in registry.aliases(ref.registered_name).items()
                if number == str(version.version)
            )
            assert ref.name is not None
            return ResolvedModel(
                ref.name,
                f"models:/{ref.registered_name}/{version.version}",
                version=str(version.version),
                run_id=version.run_id,
                aliases=aliases,
                registered_name=ref.registered_name,
            )
        assert ref.run_id is not None
        run = registry.get_run(ref.run_id)
    except TrackingError as exc:
        raise ModelSourceError(f"cannot resolve {ref.raw!r}: {exc}") from exc
    tags = run.data.tags
    team, ticker = tags.get("team"), tags.get("ticker")
    default_name = registered_model_name(team, ticker) if team and ticker else ref.run_id
    return ResolvedModel(ref.name or default_name, f"runs:/{ref.run_id}/model", run_id=ref.run_id)


def fetch_bundle(model: ResolvedModel, tracking_uri: str | None, workdir: Path) -> Path:
    """A local inference bundle for ``model``: downloaded, or exported when there is none yet."""
    if model.run_id is None:
        local = Path(model.source)
        if is_bundle(local):
            return local
        return export_bundle(find_ludwig_dir(local), workdir / "bundle")
    registry = MlflowRegistry(tracking_uri)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        downloaded = registry.download(model.run_id, RUN_ARTIFACT, workdir)
        if is_bundle(downloaded):
            return downloaded
    except TrackingError:
        pass  # no bundle logged yet: export one from the Ludwig model below
    try:
        import ludwig  # noqa: F401
    except ImportError as exc:
        raise BundleError(
            f"{model.name}: run {model.run_id} has no '{RUN_ARTIFACT}' artifact and ludwig is not "
            "installed here to export one; deploy through the serving asset, which exports it"
        ) from exc
    downloaded = registry.download(model.run_id, MODEL_ARTIFACT, workdir)
    return export_bundle(find_ludwig_dir(downloaded), workdir / "bundle")


def stage_bundle(model: ResolvedModel, tracking_uri: str | None, root: Path) -> Path:
    """A local folder under ``root`` holding ``model``'s inference bundle and its ``origin.json``.

    A version's bundle never changes, so a folder that is already complete is reused (only its
    origin, whose aliases move, is rewritten); a new one is downloaded beside it and renamed into
    place, so a server never sees half a bundle. Folders are world-readable: a container's user reads
    them through a read-only mount.
    """
    key = f"{model.name}-v{model.version}" if model.version else f"{model.name}-{model.run_id or 'local'}"
    target = root / key
    root.mkdir(parents=True, exist_ok=True)
    if not is_bundle(target):
        if model.run_id is not None and tracking_uri is not None:
            ensure_run_bundle(tracking_uri, model.run_id)  # exported to the run once, for every stager
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            bundle = fetch_bundle(model, tracking_uri, staging / "fetch")
            shutil.copytree(bundle, staging / "bundle")
            shutil.rmtree(staging / "fetch", ignore_errors=True)
            (staging / "bundle").chmod(0o755)
            for path in (staging / "bundle").rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            if not is_bundle(target):  # else a concurrent deployment staged it meanwhile: keep that one
                if target.exists():
                    shutil.rmtree(target)
                (staging / "bundle").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    handle, origin = tempfile.mkstemp(dir=target, prefix=f".{ORIGIN_FILE}.")
    with open(handle, "w", encoding="utf-8") as out:
        out.write(json.dumps(asdict(model), indent=2, sort_keys=True))
    Path(origin).chmod(0o644)
    Path(origin).replace(target / ORIGIN_FILE)
    return target
