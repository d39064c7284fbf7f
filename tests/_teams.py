"""Two small teams for end-to-end tests: red trades MSFT with a return model, blue TSLA with a
direction classifier, both with permissive gates so that each gets a champion on a short history."""

from __future__ import annotations

from pathlib import Path


def write_two_small_teams(project: Path) -> None:
    (project / "teams" / "red.yaml").write_text(
        "tickers: [MSFT]\nmodel: {ludwig_config: return_mlp.yaml}\n"
        "promotion: {min_skill_vs_naive: -1.0}\n"
        "strategy: {name: threshold_long_flat, params: {threshold: 0.0}}\n",
        encoding="utf-8",
    )
    (project / "teams" / "blue.yaml").write_text(
        "tickers: [TSLA]\nmodel: {ludwig_config: direction_classifier.yaml}\n"
        "promotion: {metric: directional_accuracy, min_skill_vs_naive: -1.0}\n"
        "strategy: {name: direction_classifier, params: {min_confidence: 0.51}}\n",
        encoding="utf-8",
    )
