from __future__ import annotations

import pytest

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.overlay import deep_merge, format_key_path, parse_yaml_mapping, source_of


def test_mappings_merge_and_lists_replace() -> None:
    base = {"tickers": ["AAPL", "MSFT"], "risk": {"max_position_pct": 0.25, "max_orders_per_day": 10}}
    overlay = {"tickers": ["TSLA"], "risk": {"max_orders_per_day": 3}}
    merged, provenance = deep_merge([("base.yaml", base), ("red.yaml", overlay)])
    assert merged == {"tickers": ["TSLA"], "risk": {"max_position_pct": 0.25, "max_orders_per_day": 3}}
    assert source_of(("risk", "max_orders_per_day"), provenance) == "red.yaml"
    assert source_of(("risk", "max_position_pct"), provenance) == "base.yaml"
    # the replaced list belongs to the overlay, element by element
    assert source_of(("tickers", 0), provenance) == "red.yaml"
    assert ("tickers", 1) not in provenance


def test_merge_does_not_mutate_layers() -> None:
    base = {"strategy": {"params": {"threshold": 0.1}}}
    overlay = {"strategy": {"params": {"max_holdings": 2}}}
    merged, _ = deep_merge([("b", base), ("o", overlay)])
    merged["strategy"]["params"]["threshold"] = 9
    assert base == {"strategy": {"params": {"threshold": 0.1}}}
    assert overlay == {"strategy": {"params": {"max_holdings": 2}}}


def test_overlay_scalar_replaces_mapping_and_vice_versa() -> None:
    merged, provenance = deep_merge([("b", {"model": {"ludwig_config": "a.yaml"}}), ("o", {"model": None})])
    assert merged == {"model": None}
    assert source_of(("model", "ludwig_config"), provenance) == "o"


def test_unknown_path_falls_back_to_nearest_recorded_parent() -> None:
    _, provenance = deep_merge([("b", {"risk": {"a": 1}}), ("o", {"risk": {"b": 2}})])
    assert source_of(("risk", "zzz"), provenance) == "o"


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_yaml_mapping("tickers: [AAPL\nrisk: {", "teams/red.yaml")
    assert str(err.value).startswith("teams/red.yaml: YAML syntax error: line ")


def test_duplicate_yaml_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"teams/red.yaml: YAML syntax error: .*duplicate key 'tickers'"):
        parse_yaml_mapping("tickers: [A]\ntickers: [B]\n", "teams/red.yaml")


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping at the top level, got list"):
        parse_yaml_mapping("- a\n- b\n", "x.yaml")
    assert parse_yaml_mapping("", "empty.yaml") == {}


def test_format_key_path() -> None:
    assert format_key_path(("tickers", 2)) == "tickers[2]"
    assert format_key_path(("strategy", "params", "threshold")) == "strategy.params.threshold"


def test_mapping_with_a_different_name_is_replaced_whole() -> None:
    base = {"strategy": {"name": "threshold_long_flat", "params": {"threshold": 0.002}}}
    overlay = {"strategy": {"name": "direction_classifier", "params": {"min_confidence": 0.6}}}
    merged, _ = deep_merge([("b", base), ("o", overlay)])
    assert merged["strategy"] == {"name": "direction_classifier", "params": {"min_confidence": 0.6}}
    same = {"strategy": {"name": "threshold_long_flat", "params": {"threshold": 0.01}}}
    merged, _ = deep_merge([("b", base), ("o", same)])
    assert merged["strategy"]["params"] == {"threshold": 0.01}
