"""The predicted-vs-actual chart logged with every training run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def predicted_vs_actual_png(predictions: pd.DataFrame, title: str, path: Path) -> Path:
    """Out-of-sample predictions against the realised values, one colour per fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classifier = predictions["predicted_return"].isna().all()
    predicted = predictions["prob_up"] if classifier else predictions["predicted_return"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for fold, rows in predictions.groupby("fold"):
        left.plot(rows["date"], rows["actual_return"], color="0.6", linewidth=0.8)
        left.plot(rows["date"], predicted.loc[rows.index], linewidth=1.2, label=f"fold {fold}")
        right.scatter(predicted.loc[rows.index], rows["actual_return"], s=8, label=f"fold {fold}")
    left.set_title(
        "prob. up (colour) vs return (grey)" if classifier else "predicted (colour) vs actual (grey)"
    )
    left.tick_params(axis="x", labelrotation=30)
    right.set_xlabel("prob. up" if classifier else "predicted log return")
    right.set_ylabel("actual log return")
    right.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
