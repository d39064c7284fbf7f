"""``ludwig.api``, set up once per process for whatever builds or loads a Ludwig model (training,
the serving bundle export): the CPU torch shim first, and Ludwig's config validation against a
JSON schema that is itself checked once.

Ludwig validates every config it builds a model from (training, each walk-forward fold, loading a
saved model) with ``jsonschema.validate``, which first checks Ludwig's own schema, a constant,
against the Draft 7 metaschema, after generating that schema from its marshmallow classes: about
4 s the first time in a process and 1 to 3 s each time after, most of a small training's time and
of a bundle export's. Here the schema is generated and checked once per model type, and each config
is still validated in full, raising the same ``ConfigValidationError`` with the same message. The
checked schema lives in Ludwig's own module, so a process forked from one that warmed it
(:func:`warm_ludwig_schema`, the run launcher's fork server) never checks it again.

Importing Ludwig also parses its parameter metadata (720 KB of YAML in ``ludwig/schema/metadata``)
with PyYAML's pure-Python loader: 0.8 s of a 6.4 s import. Here it is parsed with libyaml's loader,
where PyYAML has it, to the same values.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from mlops_pipeline.config.ludwig_schema import SUPPORTED_MODEL_TYPE


@functools.cache
def import_ludwig_api() -> ModuleType:
    """``ludwig.api`` with the CPU torch shim applied first and the schema checked once."""
    import mlops_pipeline.torch_shim  # noqa: F401  (must precede any ludwig import)

    with libyaml_safe_load():
        import ludwig.api

    _check_ludwig_schema_once()
    return ludwig.api


# Held while yaml.safe_load is swapped: two threads importing Ludwig at once would otherwise each
# keep the other's replacement as the function to restore.
_YAML_SWAP = threading.RLock()


@contextmanager
def libyaml_safe_load() -> Iterator[None]:
    """``yaml.safe_load`` parses with libyaml's loader inside the block, in every thread of the
    process (the same values; a malformed document's error may read differently); PyYAML's own
    function is back on exit. Nothing changes where PyYAML was built without libyaml."""
    import yaml

    if not yaml.__with_libyaml__:
        yield
        return

    def safe_load(stream: Any) -> Any:
        return yaml.load(stream, Loader=yaml.CSafeLoader)

    with _YAML_SWAP:
        pure_python = yaml.safe_load
        yaml.safe_load = safe_load
        try:
            yield
        finally:
            yaml.safe_load = pure_python


def warm_ludwig_schema() -> None:
    """Generate and check the schema of the platform's model type now (a process that forks others)."""
    import_ludwig_api()
    from ludwig.config_validation import validation

    validation.check_schema.validator(SUPPORTED_MODEL_TYPE)  # type: ignore[attr-defined]


def _check_ludwig_schema_once() -> None:
    import jsonschema
    from ludwig.config_validation import validation
    from ludwig.constants import MODEL_ECD, MODEL_TYPE
    from ludwig.error import ConfigValidationError
    from ludwig.schema.model_types import base

    if hasattr(validation.check_schema, "validator"):  # by this module imported before (a fork)
        return

    @functools.lru_cache(maxsize=3)
    def validator(model_type: str) -> Any:
        schema = validation.get_schema(model_type=model_type)
        checker = validation.get_validator()
        checker.check_schema(schema)
        return checker(schema)

    def check_schema(updated_config: dict[str, Any]) -> None:
        model_type = updated_config.get(MODEL_TYPE, MODEL_ECD)
        with validation.VALIDATION_LOCK:
            error = jsonschema.exceptions.best_match(validator(model_type).iter_errors(updated_config))
        if error is not None:
            raise ConfigValidationError(
                f"Failed to validate JSON schema for config. Error: {error.message}"
            ) from error

    check_schema.validator = validator  # type: ignore[attr-defined]
    validation.check_schema = check_schema
    base.check_schema = check_schema
