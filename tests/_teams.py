"""Two small teams for end-to-end tests: red trades MSFT with a return model, blue TSLA with a
direction classifier, both with permissive gates so that each gets a champion on a short history.
By default their models are the shipped configs cut to two epochs (cheap to train); the shipped
configs as they are train in the shipped-teams test."""

from __future__ import annotations

from pathlib import Path

SHIPPED_CONFIGS = ("return_mlp.yaml", "direction_classifier.yaml")
TINY_CONFIGS = ("tiny_return.yaml", "tiny_direction.yaml")


def write_tiny_configs(project: Path) -> tuple[str, str]:
    """Two-epoch copies of the shipped return and direction configs in the project; their names."""
    for name, source in zip(TINY_CONFIGS, SHIPPED_CONFIGS, strict=True):
        text = (project / "ludwig_configs" / source).read_text(encoding="utf-8")
        assert "epochs: 12" in text, f"{source} no longer trains 12 epochs: update the tiny copy"
        tiny = text.replace("epochs: 12", "epochs: 2")
        (project / "ludwig_configs" / name).write_text(tiny, encoding="utf-8")
    return TINY_CONFIGS


def write_two_small_teams(
    project: Path,
    configs: tuple[str, str] | None = None,
    train_window_days: int | None = None,
    blue_min_confidence: float = 0.51,
) -> None:
    """Red's and blue's overlays; ``configs`` names their Ludwig configs (red's, blue's), by default
    the tiny ones."""
    configs = configs or write_tiny_configs(project)
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
