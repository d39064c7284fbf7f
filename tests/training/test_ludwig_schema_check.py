"""Ludwig configs are validated in full, against a schema checked once per process; Ludwig's
parameter metadata is parsed with libyaml to the same values."""

from __future__ import annotations

import copy
import importlib.util
import multiprocessing
import sys
from pathlib import Path

import pytest
import yaml

from mlops_pipeline.ludwig_api import libyaml_safe_load, warm_ludwig_schema
from mlops_pipeline.training.ludwig_runner import import_ludwig_api

pytestmark = pytest.mark.integration  # imports Ludwig

CONFIG = {
    "model_type": "ecd",
    "input_features": [{"name": "rsi_14", "type": "number"}],
    "output_features": [{"name": "target_next_return", "type": "number"}],
    "combiner": {"type": "concat", "output_size": 8},
    "trainer": {"epochs": 1},
}


def _original_check(config: dict) -> str | None:
    """The message of Ludwig's own validation (``jsonschema.validate``, metaschema check included)."""
    import jsonschema
    from ludwig.config_validation import validation

    try:
        jsonschema.validate(config, validation.get_schema("ecd"), cls=validation.get_validator())
    except jsonschema.exceptions.ValidationError as error:
        return f"Failed to validate JSON schema for config. Error: {error.message}"
    return None


def test_every_config_is_validated_without_checking_the_schema_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import_ludwig_api()
    from ludwig.config_validation import validation
    from ludwig.error import ConfigValidationError
    from ludwig.schema.model_types.base import ModelConfig

    ModelConfig.from_dict(CONFIG)  # the schema is checked here at the latest

    def no_metaschema_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("jsonschema.validate checks the constant schema again")

    monkeypatch.setattr(validation, "validate", no_metaschema_check)
    assert ModelConfig.from_dict(CONFIG).combiner.output_size == 8

    bad = copy.deepcopy(CONFIG)
    bad["combiner"]["output_size"] = "big"
    expected = _original_check(bad)
    assert expected is not None and "big" in expected
    with pytest.raises(ConfigValidationError) as refused:
        ModelConfig.from_dict(bad)
    assert str(refused.value) == expected


def _build_a_model_config_without_generating_the_schema() -> None:
    from ludwig.config_validation import validation
    from ludwig.schema.model_types.base import ModelConfig

    def no_schema(*args: object, **kwargs: object) -> None:
        raise AssertionError("the schema is generated and checked again")

    validation.get_schema = no_schema
    for name in [name for name in sys.modules if name.startswith("mlops_pipeline.")]:
        del sys.modules[name]  # as a run forked by the run launcher imports the platform anew
    from mlops_pipeline.training.ludwig_runner import import_ludwig_api as imported_anew

    imported_anew()
    assert ModelConfig.from_dict(CONFIG).combiner.output_size == 8


def test_a_process_forked_after_the_warm_up_never_checks_the_schema_again() -> None:
    warm_ludwig_schema()  # what the run launcher's fork server does
    child = multiprocessing.get_context("fork").Process(
        target=_build_a_model_config_without_generating_the_schema
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml: the block changes nothing")
def test_ludwigs_metadata_parses_to_the_same_values_with_libyaml() -> None:
    spec = importlib.util.find_spec("ludwig")
    assert spec is not None and spec.submodule_search_locations
    metadata = sorted(
        (Path(spec.submodule_search_locations[0]) / "schema" / "metadata" / "configs").glob("*.yaml")
    )
    assert len(metadata) >= 10
    pure_python = yaml.safe_load
    with libyaml_safe_load():
        assert yaml.safe_load is not pure_python
        parsed = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in metadata]
    assert yaml.safe_load is pure_python
    assert parsed == [yaml.safe_load(path.read_text(encoding="utf-8")) for path in metadata]
