from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.teams import load_teams

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(project: Path, only: list[str] | None = None):
    return load_teams(project / "teams", project / "ludwig_configs", only=only)


def _write(project: Path, name: str, text: str) -> None:
    (project / "teams" / name).write_text(text, encoding="utf-8")


def _error_lines(project: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _load(project)
    return str(err.value).splitlines()


def test_repository_overlays_are_valid() -> None:
    teams = load_teams(REPO_ROOT / "teams", REPO_ROOT / "ludwig_configs")
    assert set(teams) == {"red", "blue"}
    assert teams["red"].strategy.name == "rotate_best_gain"
    assert teams["blue"].tickers == ["AAPL", "AMZN", "TSLA"]
    # base.yaml values survive where the overlay is silent
    assert teams["blue"].risk.max_orders_per_day == 10
    assert teams["blue"].monitoring.drift_severity == "ERROR"
    assert teams["blue"].monitoring.window_days == 20


def test_adding_a_file_adds_a_team(project: Path) -> None:
    _write(project, "green.yaml", "tickers: [IBM]\n")
    teams = _load(project)
    assert set(teams) == {"red", "blue", "green"}
    green = teams["green"]
    assert green.tickers == ["IBM"]
    assert green.model.ludwig_config == "return_mlp.yaml"  # from base.yaml
    assert green.broker.api_key_env == "GREEN_ALPACA_API_KEY"  # derived from the team name


def test_config_hash_is_stable_and_sensitive(project: Path) -> None:
    first = _load(project)["red"].config_hash
    assert first == _load(project)["red"].config_hash
    _write(project, "red.yaml", (project / "teams/red.yaml").read_text() + "costs: {slippage_bps: 7}\n")
    assert _load(project)["red"].config_hash != first


def test_unknown_key_names_file_and_path(project: Path) -> None:
    _write(project, "red.yaml", (project / "teams/red.yaml").read_text() + "risk: {max_postion_pct: 0.3}\n")
    assert _error_lines(project) == ["teams/red.yaml: risk.max_postion_pct: unknown key"]


def test_wrong_type_names_value(project: Path) -> None:
    text = re.sub(r"threshold: [0-9.]+", "threshold: lots", (project / "teams/red.yaml").read_text())
    _write(project, "red.yaml", text)
    (line,) = _error_lines(project)
    assert line.startswith("teams/red.yaml: strategy.params.threshold: Input should be a valid number")
    assert "'lots'" in line


def test_error_in_base_is_attributed_to_base(project: Path) -> None:
    text = (
        (project / "teams/base.yaml").read_text().replace("max_orders_per_day: 10", "max_orders_per_day: -1")
    )
    _write(project, "base.yaml", text)
    lines = _error_lines(project)
    # both teams inherit it; each line names base.yaml and the key
    assert len(lines) == 2
    assert all(
        line.startswith("teams/base.yaml: risk.max_orders_per_day: Input should be greater") for line in lines
    )


def test_missing_ludwig_config(project: Path) -> None:
    text = (project / "teams/blue.yaml").read_text().replace("direction_classifier.yaml", "lstm.yaml")
    _write(project, "blue.yaml", text)
    (line,) = _error_lines(project)
    assert line.startswith("teams/blue.yaml: model.ludwig_config: Value error, 'lstm.yaml' not found in")
    assert "direction_classifier.yaml" in line  # lists what is available


def test_duplicate_ticker(project: Path) -> None:
    text = (project / "teams/red.yaml").read_text().replace("[AAPL, MSFT, NVDA]", "[AAPL, MSFT, AAPL]")
    _write(project, "red.yaml", text)
    (line,) = _error_lines(project)
    assert line == "teams/red.yaml: tickers: Value error, duplicate ticker 'AAPL'"


def test_bad_ticker_symbol(project: Path) -> None:
    text = (project / "teams/red.yaml").read_text().replace("[AAPL, MSFT, NVDA]", "[AAPL, msft]")
    _write(project, "red.yaml", text)
    (line,) = _error_lines(project)
    assert line.startswith("teams/red.yaml: tickers[1]: String should match pattern")


def test_unknown_strategy_name(project: Path) -> None:
    text = (project / "teams/red.yaml").read_text().replace("rotate_best_gain", "yolo")
    _write(project, "red.yaml", text)
    (line,) = _error_lines(project)
    assert line.startswith("teams/red.yaml: strategy: Input tag 'yolo' found using 'name' does not match")


def test_strategy_params_validated_per_strategy(project: Path) -> None:
    text = (
        (project / "teams/red.yaml")
        .read_text()
        .replace("max_holdings: 2", "max_holdings: 2\n    leverage: 3")
    )
    _write(project, "red.yaml", text)
    assert _error_lines(project) == ["teams/red.yaml: strategy.params.leverage: unknown key"]


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {"min_holdings: 1": "min_holdings: 3"},
            "teams/red.yaml: strategy.params: Value error, min_holdings 3 exceeds max_holdings 2",
        ),
        (
            {"min_holdings: 1": "min_holdings: 2", "[AAPL, MSFT, NVDA]": "[AAPL]"},
            "teams/red.yaml: strategy: Value error, params.min_holdings 2 exceeds the team's 1 tickers",
        ),
    ],
)
def test_min_holdings_fits_the_holdings_and_the_tickers(
    project: Path, edits: dict[str, str], expected: str
) -> None:
    text = (project / "teams/red.yaml").read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    _write(project, "red.yaml", text)
    assert _error_lines(project) == [expected]


def test_yaml_syntax_error(project: Path) -> None:
    _write(project, "red.yaml", "tickers: [AAPL\n")
    (line,) = _error_lines(project)
    assert line.startswith("teams/red.yaml: YAML syntax error: line 2")


def test_every_broken_file_is_reported_and_no_team_returned(project: Path) -> None:
    _write(project, "red.yaml", "tickers: [AAPL\n")
    _write(project, "blue.yaml", "tickers: [AAPL]\nbogus: 1\n")
    lines = _error_lines(project)
    assert any(line.startswith("teams/red.yaml: YAML syntax error") for line in lines)
    assert "teams/blue.yaml: bogus: unknown key" in lines


def test_name_key_is_reserved(project: Path) -> None:
    _write(project, "red.yaml", "name: blue\ntickers: [AAPL]\n")
    assert _error_lines(project) == ["teams/red.yaml: name: set by the file name; remove this key"]


def test_invalid_team_file_name(project: Path) -> None:
    _write(project, "Red-Team.yaml", "tickers: [AAPL]\n")
    (line,) = _error_lines(project)
    assert "team name 'Red-Team' must match" in line


def test_yml_extension_is_rejected(project: Path) -> None:
    _write(project, "green.yml", "tickers: [AAPL]\n")
    (line,) = _error_lines(project)
    assert line.endswith("green.yml: overlays must use the .yaml extension")


def test_only_selects_teams_and_rejects_unknown(project: Path) -> None:
    assert set(_load(project, only=["blue"])) == {"blue"}
    with pytest.raises(ConfigError, match="unknown team"):
        _load(project, only=["purple"])


def test_required_key_missing_everywhere(project: Path) -> None:
    base = (project / "teams/base.yaml").read_text()
    _write(
        project,
        "base.yaml",
        base.replace(
            "strategy:\n  name: threshold_long_flat\n  params:\n"
            "    threshold: 0.002               "
            "# predicted next-day return needed to hold a ticker\n"
            "    min_holdings: 1                "
            "# always hold the best-ranked ticker (see README, Team overlays)\n",
            "",
        ),
    )
    _write(project, "green.yaml", "tickers: [IBM]\n")
    lines = _error_lines(project)
    assert "teams/green.yaml (merged with teams/base.yaml): strategy: required key is missing" in lines


def test_reserved_team_name(project: Path) -> None:
    _write(project, "market.yaml", "tickers: [AAPL]\n")
    assert _error_lines(project) == ["teams/market.yaml: team name 'market' is reserved; rename the file"]
