"""A run forked from the fork server keeps the platform's modules it imported, unless a source file
changed since: then it imports the code on disk."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_pipeline.code_freshness import forget_if_edited, source_stamp

PACKAGE = "freshness_probe"


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / PACKAGE
    (root / "inner").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "inner" / "__init__.py").write_text("")
    (root / "inner" / "rules.py").write_text("LIMIT = 1\n")
    (root / "glue.py").write_text("NAME = 'glue'\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield root
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_modules_are_kept_until_a_source_changes_then_the_code_on_disk_is_imported(package: Path) -> None:
    stamp = source_stamp(package)
    rules = importlib.import_module(f"{PACKAGE}.inner.rules")
    glue = importlib.import_module(f"{PACKAGE}.glue")
    keep = frozenset({f"{PACKAGE}.glue"})

    assert not forget_if_edited(PACKAGE, package, stamp, keep)
    assert importlib.import_module(f"{PACKAGE}.inner.rules") is rules

    (package / "inner" / "rules.py").write_text("LIMIT = 20\n")
    assert forget_if_edited(PACKAGE, package, stamp, keep)
    assert importlib.import_module(f"{PACKAGE}.inner.rules").LIMIT == 20
    assert importlib.import_module(f"{PACKAGE}.glue") is glue  # kept: it executes the run


def test_a_new_or_deleted_source_counts_as_an_edit(package: Path) -> None:
    stamp = source_stamp(package)
    (package / "added.py").write_text("")
    assert source_stamp(package) != stamp
    (package / "added.py").unlink()
    assert source_stamp(package) == stamp
    (package / "glue.py").unlink()
    assert source_stamp(package) != stamp
