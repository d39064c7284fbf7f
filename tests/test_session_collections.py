"""A session's garbage collections skip the objects that existed before it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from mlops_pipeline.session_runner import collections_skip_existing_objects


@pytest.fixture(autouse=True)
def _nothing_frozen_before() -> Iterator[None]:
    """Earlier tests in this process may have frozen objects (a model server's registry does)."""
    was_frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    yield
    if was_frozen:
        gc.freeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_existing_objects_are_skipped_during_a_session_and_collectable_after() -> None:
    before = _Cycle()
    with collections_skip_existing_objects():
        assert gc.get_freeze_count() > 0
        assert not any(item is before for item in gc.get_objects())  # out of every collection
        during = _Cycle()
        assert any(item is during for item in gc.get_objects())  # the session's own objects are not
    assert gc.get_freeze_count() == 0
    assert any(item is before for item in gc.get_objects())


def test_what_survives_a_step_is_skipped_from_then_on_and_its_young_garbage_collected() -> None:
    with collections_skip_existing_objects() as skip_survivors:
        imported = _Cycle()  # a library a step imported: it lives on
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage  # a step's cycle nobody holds any more
        skip_survivors()
        assert not any(item is imported for item in gc.get_objects())
        assert gone() is None  # collected, not frozen
    assert any(item is imported for item in gc.get_objects())


def test_objects_someone_else_froze_stay_frozen() -> None:
    held = _Cycle()
    gc.freeze()
    try:
        with collections_skip_existing_objects() as skip_survivors:
            during = _Cycle()
            skip_survivors()
            assert any(item is during for item in gc.get_objects())  # left to the collector
        assert gc.get_freeze_count() > 0
        assert not any(item is held for item in gc.get_objects())
    finally:
        gc.unfreeze()


def test_an_error_in_the_session_unfreezes_all_the_same() -> None:
    with pytest.raises(RuntimeError), collections_skip_existing_objects():
        raise RuntimeError("a step failed")
    assert gc.get_freeze_count() == 0
