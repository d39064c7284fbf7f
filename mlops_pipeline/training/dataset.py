"""A team's training dataset for one ticker: the columns its Ludwig config uses, ready to train on."""

from __future__ import annotations

import hashlib

import pandas as pd

from mlops_pipeline.config.ludwig import LudwigConfigFile
from mlops_pipeline.market.features import drop_warmup


class DatasetError(ValueError):
    """The feature table cannot produce a usable dataset."""


def build_training_dataset(
    features: pd.DataFrame, ludwig: LudwigConfigFile, train_window_days: int | None
) -> pd.DataFrame:
    """Rows with every input defined and a known target, oldest first, limited to the training window.

    The last feature row has no target yet (it is the row predictions are made from) and is excluded.
    """
    columns = ["date", *ludwig.input_features, *ludwig.output_features]
    table = drop_warmup(features).dropna(subset=ludwig.output_features)
    if train_window_days is not None:
        table = table.tail(train_window_days)
    table = table.loc[:, columns].reset_index(drop=True)
    incomplete = table[ludwig.input_features].isna().any(axis=1)
    if incomplete.any():
        dates = table.loc[incomplete, "date"].dt.strftime("%Y-%m-%d").head(5).tolist()
        raise DatasetError(f"{int(incomplete.sum())} row(s) with missing inputs after warm-up, e.g. {dates}")
    if table.empty:
        raise DatasetError("no rows with a known target after the warm-up period")
    return table


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values, columns and dtypes), stable across processes."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    header = "|".join(f"{column}:{dtype}" for column, dtype in frame.dtypes.items()).encode()
    return hashlib.sha256(header + hashed).hexdigest()[:16]
