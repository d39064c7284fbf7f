"""Validate Ludwig configs against Ludwig's own JSON schema without importing ludwig.

Importing ludwig takes seconds, so the schema of the installed version is exported once (in a
subprocess) and stored without its annotations: the package ships the export for the pinned
version, and any other installed version is exported on first use into
``<home>/cache/ludwig-schema/``. Ludwig's schema accepts unknown top-level sections (a stray
``model:`` block would be silently ignored), so top-level keys are also checked against the
sections Ludwig reads.

``python -m mlops_pipeline.config.ludwig_schema OUT.json.gz`` writes the export.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlops_pipeline.config.errors import ConfigIssue
from mlops_pipeline.config.overlay import format_key_path

PACKAGED_SCHEMAS = Path(__file__).resolve().parent / "schemas"
TOP_LEVEL_SECTIONS = (
    "model_type",
    "input_features",
    "output_features",
    "combiner",
    "trainer",
    "preprocessing",
    "defaults",
    "hyperopt",
    "backend",
    "ludwig_version",
)
SUPPORTED_MODEL_TYPE = "ecd"
EXPORT_TIMEOUT_S = 300
_ANNOTATIONS = frozenset(
    {"description", "title", "parameter_metadata", "default", "examples", "description_implications"}
)
_NAME_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs"})


class LudwigSchemaError(RuntimeError):
    """Ludwig's schema could not be exported or read."""


def installed_ludwig_version() -> str:
    try:
        return importlib.metadata.version("ludwig")
    except importlib.metadata.PackageNotFoundError as exc:
        raise LudwigSchemaError("ludwig is not installed: cannot validate Ludwig configs") from exc


def schema_file_name(version: str) -> str:
    return f"ludwig-{version}-{SUPPORTED_MODEL_TYPE}.schema.json.gz"


def default_cache_dir() -> Path:
    from mlops_pipeline.config.settings import load_settings

    return load_settings().home_dir / "cache" / "ludwig-schema"


def schema_path(version: str, cache_dir: Path | None = None) -> Path:
    """The packaged export for ``version`` if there is one, else the cache file (exported if missing)."""
    packaged = PACKAGED_SCHEMAS / schema_file_name(version)
    if packaged.is_file():
        return packaged
    cached = (cache_dir or default_cache_dir()) / schema_file_name(version)
    if not cached.is_file():
        export_schema(cached)
    return cached


def export_schema(destination: Path) -> None:
    """Export the installed Ludwig's schema to ``destination`` in a subprocess (atomic write)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        subprocess.run(
            [sys.executable, "-m", __name__, str(partial)],
            check=True,
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        partial.unlink(missing_ok=True)
        detail = (getattr(exc, "stderr", "") or "").strip().splitlines()[-1:] or [str(exc)]
        raise LudwigSchemaError(f"exporting Ludwig's config schema failed: {detail[0]}") from exc
    partial.replace(destination)


@lru_cache(maxsize=4)
def _validator(path: Path):
    from jsonschema import Draft7Validator

    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return Draft7Validator(json.load(handle))


def validation_issues(
    config: dict[str, Any], source: str, cache_dir: Path | None = None
) -> list[ConfigIssue]:
    """Every problem of ``config`` (read from ``source``) as Ludwig's schema sees it, plus unknown
    top-level sections. An empty list means the config is valid."""
    issues = [
        ConfigIssue(
            source, str(key), f"unknown top-level key (Ludwig reads: {', '.join(TOP_LEVEL_SECTIONS)})"
        )
        for key in config
        if key not in TOP_LEVEL_SECTIONS
    ]
    model_type = config.get("model_type", SUPPORTED_MODEL_TYPE)
    if model_type != SUPPORTED_MODEL_TYPE:
        issues.append(ConfigIssue(source, "model_type", f"only {SUPPORTED_MODEL_TYPE!r} is supported"))
        return issues
    validator = _validator(schema_path(installed_ludwig_version(), cache_dir))
    for error in sorted(validator.iter_errors(config), key=lambda err: list(map(str, err.absolute_path))):
        issues.append(_issue(error, source))
    return issues


def _issue(error, source: str) -> ConfigIssue:
    from jsonschema.exceptions import best_match

    if error.context:
        error = best_match(error.context)
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in allowed]
        if unknown:
            return ConfigIssue(source, format_key_path((*path, unknown[0])), "unknown key")
    return ConfigIssue(source, format_key_path(path), error.message)


def strip_annotations(schema: Any) -> Any:
    """The schema without the documentation keys, which validation does not read."""
    if isinstance(schema, list):
        return [strip_annotations(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: strip_annotations(item) for name, item in value.items()}
        else:
            out[key] = strip_annotations(value)
    return out


def _export(destination: Path) -> None:
    import mlops_pipeline.torch_shim  # noqa: F401  (must precede any ludwig import)

    # isort: split
    from ludwig.config_validation.validation import get_schema

    schema = strip_annotations(get_schema(SUPPORTED_MODEL_TYPE))
    payload = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    with gzip.GzipFile(destination, "wb", mtime=0) as handle:
        handle.write(payload)


if __name__ == "__main__":
    _export(Path(sys.argv[1]))
