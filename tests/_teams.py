"""Two small teams for end-to-end tests: red trades MSFT with a return model, blue TSLA with a
direction classifier, both with permissive gates so that each gets a champion on a short history."""

from __future__ import annotations

from pathlib import Path


def write_two_small_teams(
    project: Path,
    configs: tuple[str, str] = ("return_mlp.yaml", "direction_classifier.yaml"),
    train_window_days: int | None = None,
    blue_min_confidence: float = 0.51,
) -> None:
    """Red's and blue's overlays; ``configs`` names their Ludwig configs (red's, blue's)."""
    window = f", train_window_days: {train_window_days}" if train_window_days else ""
    (project / "teams" / "red.yaml").write_text(
        f"tickers: [MSFT]\nmodel: {{ludwig_config: {configs[0]}{window}}}\n"
        "promotion: {min_skill_vs_naive: -1.0}\n"
        "strategy: {name: threshold_long_flat, params: {threshold: 0.0}}\n",
        encoding="utf-8",
    )
    (project / "teams" / "blue.yaml").write_text(
        f"tickers: [TSLA]\nmodel: {{ludwig_config: {configs[1]}{window}}}\n"
        "promotion: {metric: directional_accuracy, min_skill_vs_naive: -1.0}\n"
        f"strategy: {{name: direction_classifier, params: {{min_confidence: {blue_min_confidence}}}}}\n",
        encoding="utf-8",
    )
