from __future__ import annotations

import itertools

import pytest

from mlops_pipeline.config.teams import EvaluationSpec
from mlops_pipeline.market.features import FEATURE_COLUMNS
from mlops_pipeline.training.folds import (
    FEATURE_LOOKBACK,
    MIN_TRAIN_ROWS,
    FoldError,
    required_purge,
    walk_forward_folds,
)


def test_every_feature_has_a_lookback() -> None:
    assert set(FEATURE_LOOKBACK) == set(FEATURE_COLUMNS)
    assert required_purge() == 1 + max(FEATURE_LOOKBACK.values()) == 35


def test_folds_are_expanding_chronological_and_purged() -> None:
    folds = walk_forward_folds(1000, EvaluationSpec(folds=4, test_days=60, purge_days=30))
    assert len(folds) == 4
    assert folds[-1].test_stop == 1000
    for earlier, later in itertools.pairwise(folds):
        assert later.train_stop > earlier.train_stop  # expanding window
        assert later.test_start == earlier.test_stop  # consecutive, non-overlapping test windows
    for fold in folds:
        assert fold.test_stop - fold.test_start == 60
        assert fold.purge == 35  # the spec's 30 is raised to horizon + longest lookback
        assert fold.train_stop <= fold.test_start - 35  # no training row within the gap
        assert fold.train_stop >= MIN_TRAIN_ROWS


def test_a_purge_larger_than_required_is_kept() -> None:
    folds = walk_forward_folds(600, EvaluationSpec(folds=3, test_days=20, purge_days=50))
    assert {fold.purge for fold in folds} == {50}


def test_folds_do_not_depend_on_anything_but_rows_and_spec() -> None:
    spec = EvaluationSpec(folds=3, test_days=10, purge_days=1)
    assert walk_forward_folds(400, spec) == walk_forward_folds(400, spec)


def test_too_few_rows_is_a_clear_error() -> None:
    with pytest.raises(FoldError, match=r"150 rows are too few for 3 folds of 10 test rows .* \(need 165\)"):
        walk_forward_folds(150, EvaluationSpec(folds=3, test_days=10, purge_days=5))
