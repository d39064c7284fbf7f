from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.config.ludwig_schema import PACKAGED_SCHEMAS, installed_ludwig_version, schema_file_name
from mlops_pipeline.config.teams import load_teams

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "ludwig_configs"


def _write(folder: Path, name: str, config: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _base_config() -> dict:
    return yaml.safe_load((REPO_CONFIGS / "return_mlp.yaml").read_text(encoding="utf-8"))


def test_the_packaged_schema_matches_the_installed_ludwig() -> None:
    assert (PACKAGED_SCHEMAS / schema_file_name(installed_ludwig_version())).is_file()


def test_repository_configs_are_valid_and_genuinely_different() -> None:
    configs = {path.name: load_ludwig_config(path) for path in sorted(REPO_CONFIGS.glob("*.yaml"))}
    assert len(configs) >= 3
    kinds = {
        name: (
            tuple(sorted({f["type"] for f in cfg.config["input_features"]})),
            cfg.config["output_features"][0]["type"],
        )
        for name, cfg in configs.items()
    }
    assert len(set(kinds.values())) == len(kinds)
    assert kinds["direction_classifier.yaml"][1] == "binary"
    assert "timeseries" in kinds["return_window_timeseries.yaml"][0]
    for cfg in configs.values():
        for output in cfg.config["output_features"]:
            if output["type"] == "number":
                assert output["preprocessing"]["normalization"] == "zscore"


def test_an_unknown_top_level_section_names_file_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "ludwig_configs"
    folder.mkdir()
    path = _write(folder, "bad.yaml", {**_base_config(), "model": {"type": "mlp"}})
    with pytest.raises(ConfigError) as caught:
        load_ludwig_config(path)
    assert next(str(issue) for issue in caught.value.issues).startswith(
        "ludwig_configs/bad.yaml: model: unknown top-level key"
    )


def test_misspelled_and_invalid_values_are_reported_by_key(tmp_path: Path) -> None:
    config = _base_config()
    config["trainer"]["epoch"] = 3
    config["input_features"][0]["type"] = "nummber"
    path = _write(tmp_path, "typo.yaml", config)
    with pytest.raises(ConfigError) as caught:
        load_ludwig_config(path)
    keys = {issue.key: issue.message for issue in caught.value.issues}
    assert keys["trainer.epoch"] == "unknown key"
    assert "'nummber' is not one of" in keys["input_features[0].type"]


def test_only_ecd_models_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "llm.yaml", {**_base_config(), "model_type": "llm"})
    with pytest.raises(ConfigError, match=r"llm.yaml: model_type: only 'ecd' is supported"):
        load_ludwig_config(path)


def test_loading_overlays_rejects_a_bad_ludwig_config(project: Path) -> None:
    target = project / "ludwig_configs" / "return_window_timeseries.yaml"
    config = yaml.safe_load(target.read_text(encoding="utf-8"))
    _write(target.parent, target.name, {**config, "model": {"layers": 2}})
    with pytest.raises(ConfigError) as caught:
        load_teams(project / "teams", project / "ludwig_configs")
    lines = str(caught.value).splitlines()
    assert len(lines) == 1  # only red uses that config
    assert lines[0].startswith("teams/red.yaml: model.ludwig_config: ")
    assert "ludwig_configs/return_window_timeseries.yaml: model: unknown top-level key" in lines[0]


def test_overlays_with_valid_configs_load(project: Path) -> None:
    shutil.copy(REPO_CONFIGS / "return_mlp.yaml", project / "ludwig_configs" / "copy.yaml")
    (project / "teams" / "green.yaml").write_text("model: {ludwig_config: copy.yaml}\n", encoding="utf-8")
    teams = load_teams(project / "teams", project / "ludwig_configs")
    assert teams["green"].model.ludwig_config == "copy.yaml"


def test_ray_backend_without_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from mlops_pipeline.config.settings import get_settings
    from mlops_pipeline.training.ludwig_runner import LudwigBackendError, training_backend

    monkeypatch.setenv("MLOPS_LUDWIG_BACKEND", "ray")
    get_settings.cache_clear()
    try:
        if importlib.util.find_spec("ray") is None:
            with pytest.raises(LudwigBackendError, match=r"MLOPS_LUDWIG_BACKEND=ray needs Ray"):
                training_backend()
        else:
            assert training_backend() == "ray"
        monkeypatch.setenv("MLOPS_LUDWIG_BACKEND", "local")
        get_settings.cache_clear()
        assert training_backend() == "local"
    finally:
        get_settings.cache_clear()
