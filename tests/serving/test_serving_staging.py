"""Staged bundles: what a server loads without MLflow, and what it reports it serves."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from mlops_pipeline.serving.sources import ORIGIN_FILE, ResolvedModel, parse_model_ref, resolve, stage_bundle


def _bundle(root: Path) -> Path:
    root.mkdir(mode=0o700)
    (root / "serving.json").write_text(json.dumps({"schema": {"inputs": [], "outputs": []}}))
    (root / "inference_predictor-cpu.pt").write_bytes(b"weights v1")
    return root


def test_a_staged_bundle_is_complete_readable_reused_and_says_where_it_came_from(tmp_path: Path) -> None:
    source = _bundle(tmp_path / "exported")
    model = ResolvedModel(
        "red-AAPL", str(source), version="3", aliases=["champion"], registered_name="red-AAPL"
    )
    staged = stage_bundle(model, None, tmp_path / "bundles")
    assert staged == tmp_path / "bundles" / "red-AAPL-v3"
    assert (staged / "inference_predictor-cpu.pt").read_bytes() == b"weights v1"
    for path in [staged, *staged.iterdir()]:  # a container's own user reads them
        assert path.stat().st_mode & stat.S_IROTH
    assert sorted(path.name for path in (tmp_path / "bundles").iterdir()) == ["red-AAPL-v3"]

    served = resolve(parse_model_ref(f"red-AAPL={staged}"), tracking_uri=None)
    assert (served.version, served.aliases, served.registered_name) == ("3", ["champion"], "red-AAPL")
    assert served.source == str(source)

    # A version's bundle never changes: staged again, the copy is kept and only the origin moves.
    (source / "inference_predictor-cpu.pt").write_bytes(b"changed")
    moved = ResolvedModel("red-AAPL", str(source), version="3", aliases=[], registered_name="red-AAPL")
    assert stage_bundle(moved, None, tmp_path / "bundles") == staged
    assert (staged / "inference_predictor-cpu.pt").read_bytes() == b"weights v1"
    assert json.loads((staged / ORIGIN_FILE).read_text())["aliases"] == []
    assert sorted(path.name for path in staged.iterdir() if path.name.startswith(".")) == []
